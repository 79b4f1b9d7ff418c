"""The in-process backend (the default): workers are threads of the server, no extra dependency.

One worker per executor given; the server uses one, sharing its executor (and so its cache)
with validation. Several are possible (benchmarks, tests), each with its own cache.
"""

from __future__ import annotations

from typing import Iterator

from engine.backends.base import Backend, Event, Worker
from engine.backends.engine_worker import EngineWorker
from engine.execute import Executor
from engine.jobstore import Job


class LocalWorker(Worker):
    """A handle on an EngineWorker in this process: it cannot be lost without the server."""

    def __init__(self, engine: EngineWorker) -> None:
        super().__init__(engine.worker_id, engine.describe())
        self.engine = engine

    def run(self, job: Job) -> Iterator[Event]:
        yield from self.engine.run_prompt(job)

    def interrupt(self, prompt_id: str) -> None:
        self.engine.interrupt(prompt_id)

    def free(self, unload_models: bool) -> None:
        self.engine.free(unload_models)

    def wait_alive(self, timeout: float) -> bool:
        return True


class LocalBackend(Backend):
    name = "local"

    def __init__(self, executors: Executor | list[Executor], preview_interval: float = 0.1) -> None:
        self.executors = executors if isinstance(executors, list) else [executors]
        self.preview_interval = preview_interval

    def start(self) -> list[Worker]:
        return [LocalWorker(EngineWorker(executor, f"local-{index}", self.preview_interval))
                for index, executor in enumerate(self.executors)]

    def stop(self) -> None:
        return None
