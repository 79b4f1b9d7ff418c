"""What the server's queue needs from whatever executes prompts: workers that stream events.

A backend starts a set of workers; each worker runs one prompt at a time and yields its events
`(event, data)` in order, ending with one `RESULT` item that carries the job's outcome and what
the worker now holds (for affinity). The queue, its store and the history stay on the server;
a worker knows nothing about clients, tokens or the database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator

from engine.jobstore import Job

# The last item of every run's stream: `{"status", "outputs", "messages", "worker": describe()}`.
RESULT = "sdgraph.result"
# An output file a worker wrote in its own folder, shipped to the server's (`engine.backends.outputs`).
FILE = "sdgraph.file"

Event = tuple[str, dict[str, Any]]


class WorkerLost(RuntimeError):
    """The worker process (or its machine) went away; `started` says whether the prompt had begun."""

    def __init__(self, message: str, started: bool = True) -> None:
        super().__init__(message)
        self.started = started


@dataclass
class Holdings:
    """What a worker has loaded, as last reported: the dispatcher's affinity input."""

    checkpoints: frozenset[str] = frozenset()
    cache_keys: frozenset[str] = frozenset()

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "Holdings":
        return cls(frozenset(description.get("checkpoints", ())), frozenset(description.get("cache_keys", ())))


@dataclass
class Worker(ABC):
    """The server's handle on one worker."""

    id: str
    description: dict[str, Any] = field(default_factory=dict)  # the worker's last `describe()`

    @property
    def holdings(self) -> Holdings:
        return Holdings.from_description(self.description)

    @abstractmethod
    def run(self, job: Job) -> Iterator[Event]:
        """Run `job`, yielding its events then one RESULT; raises WorkerLost if the worker dies."""

    @abstractmethod
    def interrupt(self, prompt_id: str) -> None:
        """Ask the worker to stop `prompt_id` (no-op if it runs something else); never kills it."""

    @abstractmethod
    def free(self, unload_models: bool) -> None:
        """Drop the worker's cached outputs (models included) before its next prompt."""

    @abstractmethod
    def wait_alive(self, timeout: float) -> bool:
        """After a WorkerLost: True once the worker answers again (restarted), False on timeout."""


class Backend(ABC):
    """Starts and stops a set of workers."""

    name = "backend"

    @abstractmethod
    def start(self) -> list[Worker]:
        """Start the workers (blocking until they can take prompts) and return their handles."""

    @abstractmethod
    def stop(self) -> None:
        """Release the workers; prompts they were running have already been stopped by the queue."""
