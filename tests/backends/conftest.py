"""One local Ray cluster for the whole test session, and a harness that drives a PromptQueue on a backend.

The cluster is small on purpose (`num_cpus=2`, two fake GPUs): CI machines have two cores.
Workers load their nodes from an extension folder (the engine's and server's toy packs, the
benchmark's scale_nodes.py and contract_nodes.py), so both backends run the very same node code.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.backends import create_backend
from engine.backends.base import Backend
from engine.config import EngineConfig, build_executor
from engine.events import TERMINAL_EVENTS
from engine.jobstore import Job, JobStore
from engine.queue import PromptQueue
from tests.server.conftest import pytest_pyfunc_call  # noqa: F401  (async tests, as in tests/server)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_PACKS = [ROOT / "tests" / "engine" / "toy_nodes.py", ROOT / "tests" / "server" / "toy_server_nodes.py",
              ROOT / "bench" / "scale_pack" / "scale_nodes.py", HERE / "contract_nodes.py"]
BACKENDS = ["local", "ray"]
POLL = 0.02  # seconds between two looks at the store


@pytest.fixture(scope="package")  # every Ray test is in this package: the cluster is gone before the rest runs
def ray_cluster():
    import ray

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 2**20, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def config(tmp_path) -> EngineConfig:
    packs = tmp_path / "custom_nodes"
    packs.mkdir()
    for pack in NODE_PACKS:
        shutil.copy(pack, packs / pack.name)
    folders = {name: tmp_path / name for name in ("models", "input", "output", "temp")}
    for folder in folders.values():
        folder.mkdir()
    return EngineConfig(models_dir=folders["models"], input_dir=folders["input"], output_dir=folders["output"],
                        temp_dir=folders["temp"], extension_dirs=[packs], node_packages=())


class Harness:
    """A PromptQueue on one backend, recording every event per prompt in arrival order."""

    def __init__(self, backend: Backend, store: JobStore, validator) -> None:
        self.store = store
        self.events: list[tuple[str, dict[str, Any], str | None]] = []
        self._lock = threading.Lock()
        self.queue = PromptQueue(backend, store, self._publish, validator=validator)

    def _publish(self, event: str, data: dict[str, Any], client_id: str | None) -> None:
        if event in TERMINAL_EVENTS or (event == "executing" and data.get("node") is None):
            data = {**data, "history_state": self.store.get(data["prompt_id"]).state}  # what a client would read
        with self._lock:
            self.events.append((event, data, client_id))

    def submit(self, prompt: dict, prompt_id: str, client_id: str | None = None) -> str:
        outputs = [nid for nid, node in prompt.items() if node["class_type"] in ("Show", "SolidImage", "SaveImage")]
        self.queue.submit(Job(prompt_id=prompt_id, number=0, prompt=prompt, outputs_to_execute=outputs,
                              client_id=client_id))
        return prompt_id

    def of(self, prompt_id: str) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return [(e, d) for e, d, _ in self.events if e != "status" and d.get("prompt_id") == prompt_id]

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "condition"):
        for _ in range(int(timeout / POLL)):
            if value := predicate():
                return value
            time.sleep(POLL)
        raise AssertionError(f"{what} not reached in {timeout}s")

    def wait_done(self, prompt_id: str, timeout: float = 60.0) -> Job:
        """The finished job, once its last event (`executing` of no node) was published."""
        self.wait_for(lambda: any(n == "executing" and d["node"] is None for n, d in self.of(prompt_id)),
                      timeout, f"prompt {prompt_id} finished")
        return self.store.get(prompt_id)

    def worker(self, worker_id: str) -> dict[str, Any]:
        return next(w for w in self.queue.workers() if w["id"] == worker_id)


@pytest.fixture
def make_harness(config, tmp_path, request):
    """`make_harness(kind, workers=2, shared_outputs=False, **config_overrides)`: a started queue, stopped after."""
    started: list[Harness] = []

    def make(kind: str, workers: int = 2, shared_outputs: bool = False, **overrides: Any) -> Harness:
        if kind == "ray":
            request.getfixturevalue("ray_cluster")
        engine_config = EngineConfig(**{**config.__dict__, **overrides})
        executor = build_executor(engine_config)
        # Local workers are threads; two Ray workers are one per (fake) GPU of the session's cluster,
        # as on a GPU farm, and one is a CPU worker.
        backend = create_backend(kind, executor, engine_config, preview_interval=0.0, shared_outputs=shared_outputs,
                                 workers=workers if kind == "local" or workers != 2 else None)
        store = JobStore(tmp_path / f"queue-{len(started)}.sqlite3")
        harness = Harness(backend, store, executor)
        harness.queue.start()
        started.append(harness)
        return harness

    yield make
    for harness in started:
        harness.queue.stop()
        harness.store.close()


def toy_prompt(ckpt: str = "a.safetensors", seed: int = 1, steps: int = 3, delay: float = 0.01,
               load_seconds: float = 0.05) -> dict:
    """Loader → sampler → Show, plus a SolidImage output whose colour is the sampled value."""
    return {
        "1": {"class_type": "ScaleLoader", "inputs": {"ckpt_name": ckpt, "load_seconds": load_seconds}},
        "2": {"class_type": "ToySampler", "inputs": {"model": ["1", 0], "seed": seed, "steps": steps, "delay": delay}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
        "4": {"class_type": "SolidImage", "inputs": {"value": ["2", 0], "color": seed * 4099 % 0xFFFFFF,
                                                      "size": 4, "filename_prefix": "contract"}},
    }
