"""The durable queue and history store, without a server (and the queue over it, on a stub backend)."""

from __future__ import annotations

import threading
import time

from engine.backends.base import RESULT, Backend, JobOutcome, Worker
from engine.events import EXECUTING, EXECUTION_ERROR, EXECUTION_SUCCESS
from engine.jobstore import FINISHED, RUNNING, Job, JobStore
from engine.queue import PromptQueue


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


def test_a_result_json_cannot_carry_is_recorded_as_an_error_and_the_store_goes_on(tmp_path):
    store = JobStore(tmp_path / "q.sqlite3")
    store.add(job("bad"))
    store.add(job("good"))
    store.claim_next()
    started = ["execution_start", {"prompt_id": "bad"}]
    error = store.finish("bad", "success", {"1": {"values": {1, 2}}}, [started, ["execution_success", {}]])
    assert error is not None and "could not be stored as JSON" in error["exception_message"]
    assert "set" in error["exception_message"] and error["prompt_id"] == "bad"
    entry = store.get("bad")
    assert (entry.state, entry.status_str, entry.outputs) == (FINISHED, "error", {})
    assert entry.messages == [started, ["execution_error", error]]
    assert '"status_str": "error"' in store.history_item_json("bad")
    store.claim_next()
    assert store.finish("good", "success", {"1": {"values": [1]}}, []) is None
    assert store.get("good").status_str == "success" and store.remaining() == 0


class ResultWorker(Worker):
    """A worker whose result holds a set (not JSON) where the job's prompt says `{"unstorable": true}`."""

    def run(self, job):
        ui = {"values": {1} if job.prompt.get("unstorable") else [1]}
        yield RESULT, JobOutcome("success", {"1": ui}, [], (EXECUTION_SUCCESS, {"prompt_id": job.prompt_id}))

    def interrupt(self, prompt_id):
        return None

    def free(self, unload_models):
        return None

    def wait_alive(self, timeout):
        return True


class ResultBackend(Backend):
    def start(self):
        return [ResultWorker("stub")]

    def stop(self):
        return None


def test_the_queue_sends_the_stored_error_of_an_unstorable_result_and_runs_the_next_prompt(tmp_path):
    store = JobStore(tmp_path / "q.sqlite3")
    sent: list[tuple[str, dict]] = []
    done = threading.Event()

    def publish(event, data, client_id):
        sent.append((event, data))
        if event == EXECUTING and data == {"node": None, "prompt_id": "good"}:
            done.set()

    queue = PromptQueue(ResultBackend(), store, publish)
    queue.start()
    try:
        queue.submit(Job(prompt_id="bad", number=0, prompt={"unstorable": True}))
        queue.submit(Job(prompt_id="good", number=0, prompt={}))
        assert done.wait(30)
    finally:
        queue.stop()
    terminal = {data["prompt_id"]: event for event, data in sent if event in (EXECUTION_SUCCESS, EXECUTION_ERROR)}
    assert terminal == {"bad": EXECUTION_ERROR, "good": EXECUTION_SUCCESS}
    assert store.get("bad").status_str == "error" and store.get("good").status_str == "success"
    assert store.remaining() == 0


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


def test_previews_are_throttled_at_the_source():
    from engine.backends.engine_worker import PreviewThrottle

    throttle = PreviewThrottle(0.05)
    sent = [throttle.allow() for _ in range(10)]
    time.sleep(0.06)
    sent.append(throttle.allow())
    assert sent.count(True) == 2 and sent[0] and sent[-1]
