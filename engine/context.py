"""What a running node may use: progress reporting, the interrupt handle, paths and settings.

Passed explicitly to every `run` call; there is no global "current prompt" or interrupt flag.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from engine.events import PREVIEW, PROGRESS
from engine.paths import Paths

if TYPE_CHECKING:
    from engine.provenance import NodeRecord


class Interrupted(Exception):
    """Raised inside a run when its interrupt handle was set."""


class InterruptHandle:
    """A cooperative stop request shared by one run and whoever may cancel it (thread-safe)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Interrupted("interrupted")


Emit = Callable[[str, dict[str, Any]], None]


@dataclass
class RunContext:
    """One node's view of the run it belongs to."""

    node_id: str
    prompt_id: str
    paths: Paths
    interrupt: InterruptHandle
    emit: Emit
    prompt: dict[str, Any] = field(default_factory=dict)
    extra_pnginfo: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    # What made this node's inputs (upstream samplers, loaded models...), for provenance records.
    upstream: Callable[[], list[NodeRecord]] = field(default=lambda: [])

    @property
    def unique_id(self) -> str:
        return self.node_id

    def check_interrupt(self) -> None:
        """Raise Interrupted if the run was asked to stop; long nodes call this between steps."""
        self.interrupt.check()

    def progress(self, value: int, maximum: int) -> None:
        """Report progress of this node (one call per step) and honour an interrupt request."""
        self.emit(PROGRESS, {"value": value, "max": maximum, "node": self.node_id,
                               "prompt_id": self.prompt_id})
        self.interrupt.check()

    def preview(self, image_format: str, data: bytes) -> None:
        """Offer a preview image (e.g. a latent approximation while sampling) to listeners."""
        self.emit(PREVIEW, {"format": image_format, "data": data, "node": self.node_id,
                              "prompt_id": self.prompt_id})
