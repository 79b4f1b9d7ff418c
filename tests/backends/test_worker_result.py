"""The worker's typed run result: it runs the prompt compiled at queue time and reports that
prompt's cache keys (the ones the dispatcher computed), without signing the graph again."""

from __future__ import annotations

import engine.compile
from engine.backends.base import RESULT, JobOutcome
from engine.backends.engine_worker import EngineWorker
from engine.execute import Executor
from engine.jobstore import Job
from tests.engine.helpers import pack_prompt


def test_the_worker_reports_the_compiled_prompts_cache_keys_in_its_result(pack_registry, pack_paths, monkeypatch):
    workflow = pack_prompt(seed=3)
    compiled = Executor(pack_registry, pack_paths).compile(workflow)
    dispatched = compiled.keys(pack_paths)  # as the dispatcher does when it picks a worker
    signings = []
    real_sign = engine.compile.sign
    monkeypatch.setattr(engine.compile, "sign", lambda *a, **kw: signings.append(1) or real_sign(*a, **kw))
    worker = EngineWorker(Executor(pack_registry, pack_paths), "w1")
    job = Job(prompt_id="p", number=0, prompt=workflow.to_api(), outputs_to_execute=compiled.plan.outputs,
              compiled=compiled)
    events = list(worker.run_prompt(job))
    name, outcome = events[-1]
    assert name == RESULT and isinstance(outcome, JobOutcome) and outcome.status == "success"
    assert outcome.cache_keys == sorted(dispatched.reusable()) and len(outcome.cache_keys) == 2
    assert signings == [], "the worker reused the keys computed at dispatch"
    assert outcome.worker["models"] == ["pack_models/a.bin"]
