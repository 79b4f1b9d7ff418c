"""The prompt queue on the in-process backend: the order of what it stores and publishes, and a stop
that hands the running job back. The same guarantees on every backend: tests/backends/test_contract.py."""

from __future__ import annotations

import threading

from engine.events import EXECUTING, EXECUTION_SUCCESS, PROGRESS
from engine.execute import Executor
from engine.jobstore import FINISHED, PENDING, RUNNING, Job, JobStore
from engine.queue import PromptQueue
from tests.engine.helpers import api


def test_history_is_written_before_success_and_final_executing_are_published(registry, paths, tmp_path):
    store = JobStore(tmp_path / "q.sqlite3")
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def publish(event, data, client_id):
        if event in (EXECUTION_SUCCESS, EXECUTING) and data.get("prompt_id"):
            state = store.get(data["prompt_id"]).state
            seen.append((event if data.get("node", "-") is not None else "executing null", state))
            if event == EXECUTING and data["node"] is None:
                done.set()

    queue = PromptQueue(Executor(registry, paths), store, publish)
    queue.start()
    try:
        workflow = api({"1": ("Number", {"value": 1}), "2": ("Show", {"value": ["1", 0]})}).to_api()
        queue.submit(Job(prompt_id="p", number=0, prompt=workflow, outputs_to_execute=["2"]))
        assert done.wait(10)
    finally:
        queue.stop()
    assert seen[-2:] == [(EXECUTION_SUCCESS, FINISHED), ("executing null", FINISHED)]
    assert all(state == RUNNING for event, state in seen[:-2])


def test_stop_puts_the_running_job_back(registry, paths, tmp_path):
    store = JobStore(tmp_path / "q.sqlite3")
    started = threading.Event()
    queue = PromptQueue(Executor(registry, paths), store,
                        lambda e, d, c: started.set() if e == PROGRESS else None)
    queue.start()
    workflow = api({"1": ("Number", {"value": 1}), "2": ("Slow", {"value": ["1", 0], "steps": 1000, "delay": 0.01}),
                    "3": ("Show", {"value": ["2", 0]})}).to_api()
    queue.submit(Job(prompt_id="slow", number=0, prompt=workflow, outputs_to_execute=["3"]))
    assert started.wait(10)
    queue.stop()
    assert store.get("slow").state == PENDING and store.get("slow").attempts == 0
