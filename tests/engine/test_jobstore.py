"""The durable queue and history store, and the prompt queue's worker, without a server."""

from __future__ import annotations

import threading
import time

from engine.events import EXECUTING, EXECUTION_SUCCESS
from engine.execute import Executor
from engine.jobstore import FINISHED, PENDING, RUNNING, Job, JobStore
from engine.queue import PromptQueue
from tests.engine.helpers import api


def job(prompt_id: str, **kw) -> Job:
    return Job(prompt_id=prompt_id, number=0, prompt={"1": {"class_type": "Number", "inputs": {"value": 1}}}, **kw)


def test_pending_order_by_number_then_arrival_and_front(tmp_path):
    store = JobStore(tmp_path / "q.sqlite3")
    store.add(job("a"))
    store.add(job("b"))
    store.add(job("c"), number=0.5)
    store.add(job("d"), front=True)
    running, pending = store.queue()
    assert running == [] and [j.prompt_id for j in pending] == ["d", "c", "a", "b"]
    assert [store.position(p) for p in "dcab"] == [0, 1, 2, 3]
    assert store.claim_next().prompt_id == "d"
    assert store.get("d").state == RUNNING and store.remaining() == 4


def test_everything_survives_reopening_and_running_jobs_are_requeued(tmp_path):
    path = tmp_path / "q.sqlite3"
    store = JobStore(path)
    for name in "abc":
        store.add(job(name, client_id="me", extra_data={"k": name}))
    store.claim_next()
    store.finish("a", "success", {"1": {"values": [1]}}, [["execution_success", {}]])
    store.claim_next()  # "b" is running when the process dies (no close)
    reopened = JobStore(path)
    assert reopened.recover() == (["b"], [])
    assert [j.prompt_id for j in reopened.history()] == ["a"]
    assert reopened.history()[0].outputs == {"1": {"values": [1]}}
    _, pending = reopened.queue()
    assert [(j.prompt_id, j.client_id, j.extra_data) for j in pending] == [
        ("b", "me", {"k": "b"}), ("c", "me", {"k": "c"})]


def test_a_job_that_keeps_killing_the_server_is_failed_after_max_attempts(tmp_path):
    path = tmp_path / "q.sqlite3"
    JobStore(path).add(job("poison"))
    for _ in range(3):
        store = JobStore(path, max_attempts=3)
        store.recover()
        assert store.claim_next().prompt_id == "poison"
    store = JobStore(path, max_attempts=3)
    assert store.recover() == ([], ["poison"])
    entry = store.get("poison")
    assert entry.state == FINISHED and entry.status_str == "error"
    assert "stopped 3 times" in entry.messages[0][1]["exception_message"]


def test_history_retention_keeps_the_latest(tmp_path):
    store = JobStore(tmp_path / "q.sqlite3", max_history=3)
    for i in range(5):
        store.add(job(f"p{i}"))
        store.claim_next()
        store.finish(f"p{i}", "success", {}, [])
    assert [j.prompt_id for j in store.history()] == ["p2", "p3", "p4"]
    assert [j.prompt_id for j in store.history(max_items=2)] == ["p3", "p4"]
    assert [j.prompt_id for j in store.history(max_items=1, offset=0)] == ["p2"]


def test_delete_and_clear_touch_only_their_state(tmp_path):
    store = JobStore(tmp_path / "q.sqlite3")
    for name in "abc":
        store.add(job(name))
    store.claim_next()
    store.finish("a", "success", {}, [])
    assert store.delete_pending(["a", "b"]) == 1
    assert store.delete_history(["c"]) == 0
    assert store.clear_pending() == 1 and store.clear_history() == 1 and store.remaining() == 0


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


def test_previews_are_throttled_at_the_source():
    from engine.backends.engine_worker import PreviewThrottle

    throttle = PreviewThrottle(0.05)
    sent = [throttle.allow() for _ in range(10)]
    time.sleep(0.06)
    sent.append(throttle.allow())
    assert sent.count(True) == 2 and sent[0] and sent[-1]


def test_stop_puts_the_running_job_back(registry, paths, tmp_path):
    store = JobStore(tmp_path / "q.sqlite3")
    started = threading.Event()
    queue = PromptQueue(Executor(registry, paths), store,
                        lambda e, d, c: started.set() if e == "progress" else None)
    queue.start()
    workflow = api({"1": ("Number", {"value": 1}), "2": ("Slow", {"value": ["1", 0], "steps": 1000, "delay": 0.01}),
                    "3": ("Show", {"value": ["2", 0]})}).to_api()
    queue.submit(Job(prompt_id="slow", number=0, prompt=workflow, outputs_to_execute=["3"]))
    assert started.wait(10)
    queue.stop()
    assert store.get("slow").state == PENDING and store.get("slow").attempts == 0
