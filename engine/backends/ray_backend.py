"""The Ray backend: one long-lived Ray actor per GPU (or N CPU actors), each with its own caches.

Ray Core does the distribution: placing actors on the cluster's machines, restarting a dead one
(`max_restarts`), and streaming each prompt's events back in order (a generator method called
with `num_returns="streaming"`). Ray's own task retries are off: a prompt whose worker died is
re-queued by our dispatcher, which owns the durable queue. Actors are threaded
(`max_concurrency=2`) so `interrupt` runs while `run_prompt` streams.

This is the only module that imports `ray`; `engine.backends.create_backend` imports it only when
the Ray backend is chosen.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import ray
from ray.exceptions import GetTimeoutError, RayError, RayTaskError

import engine
from engine.backends.base import FILE, RESULT, Backend, Event, JobOutcome, Worker, WorkerLost
from engine.backends.engine_worker import EngineWorker
from engine.backends.outputs import OutputReceiver
from engine.config import EngineConfig, build_executor
from engine.errors import ExecutionError
from engine.events import EXECUTED
from engine.jobstore import Job
from engine.paths import Paths

# Where the `engine` package lives here: put on the workers' PYTHONPATH, for machines that run
# sdgraph from a checkout at the same path rather than from an installed package.
CODE_ROOT = str(Path(engine.__file__).resolve().parent.parent)


class WorkerActor:
    """The actor: an EngineWorker built from the server's (picklable) EngineConfig."""

    def __init__(self, config: EngineConfig, worker_id: str, preview_interval: float, ship_outputs: bool) -> None:
        if ship_outputs:  # no shared storage: write in a scratch folder, send files with the events
            scratch = Path(tempfile.mkdtemp(prefix=f"sdgraph-{worker_id}-"))
            config = replace(config, output_dir=scratch / "output", temp_dir=scratch / "temp")
        self.engine = EngineWorker(build_executor(config), worker_id, preview_interval, ship_outputs)

    def run_prompt(self, job: Job) -> Iterator[Event]:
        yield from self.engine.run_prompt(job)

    def interrupt(self, prompt_id: str) -> bool:
        return self.engine.interrupt(prompt_id)

    def free(self, unload_models: bool) -> None:
        self.engine.free(unload_models)

    def describe(self) -> dict[str, Any]:
        return self.engine.describe()


def absolute(config: EngineConfig) -> EngineConfig:
    """The config with every folder absolute: actors do not run in the server's working directory."""
    return replace(config, models_dir=Path(config.models_dir).resolve(), input_dir=Path(config.input_dir).resolve(),
                   output_dir=Path(config.output_dir).resolve(), temp_dir=Path(config.temp_dir).resolve(),
                   extra_model_paths=Path(config.extra_model_paths).resolve() if config.extra_model_paths else None,
                   extension_dirs=[Path(p).resolve() for p in config.extension_dirs])


class RayWorker(Worker):
    """The server's handle on one actor; shipped files are stored and renamed on the way in."""

    def __init__(self, actor: Any, worker_id: str, description: dict[str, Any],
                 receiver: OutputReceiver | None, start_timeout: float = 120.0) -> None:
        super().__init__(worker_id, description)
        self.actor = actor
        self.receiver = receiver
        self.start_timeout = start_timeout

    def run(self, job: Job) -> Iterator[Event]:
        started = False
        try:
            stream = self.actor.run_prompt.options(num_returns="streaming").remote(job)
            # An actor that cannot come back (its machine gone, no room elsewhere) would hold the
            # prompt forever: if the run has not begun in time, it goes back to the queue.
            if not ray.wait([stream], timeout=self.start_timeout)[0]:
                ray.cancel(stream)
                raise WorkerLost(f"worker {self.id} did not start the prompt in {self.start_timeout:.0f}s", False)
            for ref in stream:
                event, data = ray.get(ref)
                started = True
                if event == FILE:
                    if self.receiver is not None:
                        self.receiver.receive(self.id, data)
                    continue
                if self.receiver is not None and event == EXECUTED:
                    self.receiver.rename(self.id, data.get("output"))
                elif self.receiver is not None and event == RESULT:
                    self.receiver.rename(self.id, data.outputs)
                yield event, data
        except RayTaskError as exc:  # our code raised inside the actor: the prompt failed, the worker lives
            yield RESULT, JobOutcome.failed(ExecutionError(job.prompt_id, f"worker {self.id} failed: {exc}",
                                                           "WorkerError"))
        except RayError as exc:  # the actor died or is restarting (RayActorError), its machine left, ...
            raise WorkerLost(f"worker {self.id}: {type(exc).__name__}: {str(exc)[:300]}", started) from exc

    def interrupt(self, prompt_id: str) -> None:
        self.actor.interrupt.remote(prompt_id)  # fire and forget: a dead actor has nothing to stop

    def free(self, unload_models: bool) -> None:
        self.actor.free.remote(unload_models)

    def wait_alive(self, timeout: float) -> bool:
        started = time.monotonic()
        try:
            self.description = ray.get(self.actor.describe.remote(), timeout=timeout)
            return True
        except (GetTimeoutError, RayError):
            time.sleep(max(0.0, min(1.0, timeout - (time.monotonic() - started))))
            return False


class RayBackend(Backend):
    """Actors on a Ray cluster: `address` "auto" joins the running one, "local" starts one here.

    `workers=None`: one actor per GPU of the cluster (`num_gpus=1`), or one CPU actor per machine
    when it has none; `workers=N`: N CPU actors of `cpus_per_worker` CPUs each.
    """

    name = "ray"

    def __init__(self, config: EngineConfig, server_paths: Paths | None, address: str | None = "auto",
                 workers: int | None = None, cpus_per_worker: float = 1, preview_interval: float = 0.1,
                 max_restarts: int = -1, start_timeout: float = 300.0) -> None:
        self.config = absolute(config)
        self.receiver = OutputReceiver(server_paths) if server_paths is not None else None
        self.address = address
        self.worker_count = workers
        self.cpus_per_worker = cpus_per_worker
        self.preview_interval = preview_interval
        self.max_restarts = max_restarts
        self.start_timeout = start_timeout
        self.actors: list[Any] = []
        self._owns_ray = False

    def placement(self) -> tuple[int, dict[str, Any]]:
        """How many actors, and the resources each asks for."""
        if self.worker_count is not None:
            return self.worker_count, {"num_cpus": self.cpus_per_worker, "num_gpus": 0}
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus:
            return gpus, {"num_cpus": 0, "num_gpus": 1}
        machines = len([n for n in ray.nodes() if n.get("Alive")])
        return max(1, machines), {"num_cpus": self.cpus_per_worker, "num_gpus": 0}

    def start(self) -> list[Worker]:
        if not ray.is_initialized():  # "local": a new cluster on this machine, even if one runs already
            ray.init(address=self.address, include_dashboard=False if self.address == "local" else None)
            self._owns_ray = True
        count, resources = self.placement()
        actor_class = ray.remote(WorkerActor).options(
            max_restarts=self.max_restarts, max_task_retries=0, max_concurrency=2,
            runtime_env={"env_vars": {"PYTHONPATH": CODE_ROOT}}, **resources)
        ship = self.receiver is not None
        self.actors = [actor_class.remote(self.config, f"ray-{index}", self.preview_interval, ship)
                       for index in range(count)]
        descriptions = ray.get([actor.describe.remote() for actor in self.actors], timeout=self.start_timeout)
        return [RayWorker(actor, description["id"], description, self.receiver)
                for actor, description in zip(self.actors, descriptions)]

    def stop(self) -> None:
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except RayError:
                pass
        self.actors = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
