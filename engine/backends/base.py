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

from engine.errors import ExecutionError
from engine.events import EXECUTION_ERROR, RunStatus
from engine.jobstore import Job

# The last item of every run's stream; its data is a `JobOutcome`.
RESULT = "sdgraph.result"
# An output file a worker wrote in its own folder, shipped to the server's (`engine.backends.outputs`).
FILE = "sdgraph.file"

Event = tuple[str, Any]


@dataclass
class JobOutcome:
    """How a job ended, as its worker reports it (plain data: it crosses process boundaries).

    `terminal` is the run's last event, which the queue sends once the history entry is written;
    `worker` is the worker's `describe()` after the run; `cache_keys` are the run's node keys.
    """

    status: RunStatus
    outputs: dict[str, Any]
    messages: list[list[Any]]
    terminal: tuple[str, dict[str, Any]]
    worker: dict[str, Any] = field(default_factory=dict)
    cache_keys: list[str] = field(default_factory=list)

    @classmethod
    def failed(cls, error: ExecutionError) -> "JobOutcome":
        """A job that failed outside any node (it no longer validates, the worker broke, ...)."""
        data = error.data()
        return cls("error", {}, [[EXECUTION_ERROR, data]], (EXECUTION_ERROR, data))


class WorkerLost(RuntimeError):
    """The worker process (or its machine) went away; `started` says whether the prompt had begun."""

    def __init__(self, message: str, started: bool = True) -> None:
        super().__init__(message)
        self.started = started


@dataclass
class Holdings:
    """What a worker has loaded, as last reported: the dispatcher's affinity input."""

    models: frozenset[str] = frozenset()  # `kind/name` keys (engine.compile.ModelUse.key)
    cache_keys: frozenset[str] = frozenset()

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "Holdings":
        return cls(frozenset(description.get("models", ())), frozenset(description.get("cache_keys", ())))


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
