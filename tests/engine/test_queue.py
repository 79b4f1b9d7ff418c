"""The prompt queue on the in-process backend: the order of what it stores and publishes, and a stop
that hands the running job back. The same guarantees on every backend: tests/backends/test_contract.py."""

from __future__ import annotations

import sqlite3
import threading

from engine.events import EXECUTING, EXECUTION_ERROR, EXECUTION_SUCCESS, PROGRESS
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


class FlakyStore(JobStore):
    """A store whose history writes fail `failures` times (a locked or full database), then work."""

    def __init__(self, path, failures: int):
        super().__init__(path)
        self.failures = failures

    def finish(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().finish(*args, **kwargs)


def run_two(registry, paths, store) -> list[tuple[str, dict]]:
    """Submit two prompts; the terminal events published for each, once both are done."""
    terminal: list[tuple[str, dict]] = []
    done = threading.Event()

    def publish(event, data, client_id):
        if event in (EXECUTION_SUCCESS, EXECUTION_ERROR):
            terminal.append((event, data))
            if len(terminal) == 2:
                done.set()

    queue = PromptQueue(Executor(registry, paths), store, publish)
    queue.start()
    try:
        workflow = api({"1": ("Number", {"value": 1}), "2": ("Show", {"value": ["1", 0]})}).to_api()
        for prompt_id in ("first", "second"):
            queue.submit(Job(prompt_id=prompt_id, number=0, prompt=workflow, outputs_to_execute=["2"]))
        assert done.wait(30)
    finally:
        queue.stop()
    return terminal


def test_a_history_write_that_fails_for_a_moment_is_tried_again(registry, paths, tmp_path, monkeypatch):
    monkeypatch.setattr("engine.queue.RECORD_RETRY_DELAYS", (0.01, 0.01, 0.01))
    store = FlakyStore(tmp_path / "q.sqlite3", failures=2)
    terminal = run_two(registry, paths, store)
    assert [event for event, _ in terminal] == [EXECUTION_SUCCESS, EXECUTION_SUCCESS]
    assert store.get("first").state == FINISHED and store.get("second").state == FINISHED


def test_a_history_that_cannot_be_written_tells_the_client_and_the_queue_goes_on(registry, paths, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setattr("engine.queue.RECORD_RETRY_DELAYS", (0.01, 0.01, 0.01))
    store = FlakyStore(tmp_path / "q.sqlite3", failures=4)  # every try for the first prompt
    (event, data), second = run_two(registry, paths, store)
    assert event == EXECUTION_ERROR and data["prompt_id"] == "first"
    assert data["exception_type"] == "OperationalError"
    assert "could not be written to the history (database is locked)" in data["exception_message"]
    assert store.get("first").state == RUNNING  # recovery runs it again after a restart
    assert second[0] == EXECUTION_SUCCESS and store.get("second").state == FINISHED
