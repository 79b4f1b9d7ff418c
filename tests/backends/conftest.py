"""One local Ray cluster for the whole test session, and queues on a backend (tests/backends/helpers.py's Harness).

The cluster is small on purpose (`num_cpus=2`, two fake GPUs): CI machines have two cores.
Workers load their nodes from an extension folder (the engine's and server's toy packs, the
benchmark's scale_nodes.py and contract_nodes.py), so both backends run the very same node code.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from engine.backends import create_backend
from engine.config import EngineConfig, build_executor
from engine.jobstore import JobStore
from tests.backends.helpers import NODE_PACKS, Harness


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


@pytest.fixture
def make_harness(config, tmp_path, request):
    """`make_harness(kind, workers=2, shared_outputs=False, **config_overrides)`: a started queue, stopped after."""
    started: list[Harness] = []

    def make(kind: str, workers: int = 2, shared_outputs: bool = False, **overrides: Any) -> Harness:
        if kind == "ray":
            assert request.node.get_closest_marker("ray"), f"{request.node.name} starts Ray: mark it `ray`"
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
