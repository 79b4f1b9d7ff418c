"""Worker affinity comes from the node declarations: a pack's own loader of its own model kind
sends later prompts for that model to the worker that holds it, with no change to the engine."""

from __future__ import annotations

from engine.backends.local import LocalBackend
from engine.execute import Executor
from engine.jobstore import JobStore
from tests.backends.helpers import Harness
from tests.engine.helpers import pack_prompt


def test_a_packs_own_loader_gets_worker_affinity(pack_registry, pack_paths, tmp_path):
    (pack_paths.models_dir / "pack_models" / "b.bin").write_bytes(b"67")
    workers = [Executor(pack_registry, pack_paths) for _ in range(2)]
    harness = Harness(LocalBackend(workers), JobStore(tmp_path / "jobs.db"), Executor(pack_registry, pack_paths))
    harness.queue.start()
    try:
        # Two prompts at once: one per worker (each sampler takes 0.2 s).
        harness.submit(pack_prompt("a.bin").to_api(), "a1")
        harness.submit(pack_prompt("b.bin").to_api(), "b1")
        assert harness.wait_done("a1").status_str == harness.wait_done("b1").status_str == "success"
        holder = {w["id"]: w["models"] for w in harness.queue.workers()}
        assert sorted(holder.values()) == [["pack_models/a.bin"], ["pack_models/b.bin"]], holder
        # b again, with both workers idle: the first idle worker holds a, so only affinity picks the other.
        assert harness.wait_done(harness.submit(pack_prompt("b.bin", seed=2).to_api(), "b2")).status_str == "success"
        cached = next(d for n, d in harness.of("b2") if n == "execution_cached")["nodes"]
        assert cached == ["1"], "the loader's output was already on the worker that ran b2"
        loads = [w["model_loads"] for w in harness.queue.workers()]
        assert sorted(loads, key=str) == [{"pack_models/a.bin": 1}, {"pack_models/b.bin": 1}], loads
    finally:
        harness.queue.stop()
