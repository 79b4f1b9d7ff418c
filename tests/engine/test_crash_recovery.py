"""A prompt whose run takes the whole process down (an OOM kill) is not retried forever: every
start that a crash ended counts, and after `max_attempts` of them it is recorded as an error."""

from __future__ import annotations

import time

from engine.execute import Executor
from engine.jobstore import FINISHED, PENDING, Job, JobStore
from engine.queue import PromptQueue
from tests.engine.helpers import api


def job(prompt_id: str) -> Job:
    return Job(prompt_id=prompt_id, number=0, prompt={"1": {"class_type": "Number", "inputs": {"value": 1}}})


def crash_during_a_start(path) -> JobStore:
    """Reopen the store as a restarted server does, start the queued job, and die (no finish, no close)."""
    store = JobStore(path, max_attempts=3)
    store.recover()
    store.claim_next()
    return store


def test_each_start_ended_by_a_crash_counts_as_an_attempt(tmp_path):
    path = tmp_path / "q.sqlite3"
    JobStore(path, max_attempts=3).add(job("oom"))
    for crashes in (1, 2):
        crash_during_a_start(path)
        reopened = JobStore(path, max_attempts=3)
        assert reopened.recover() == (["oom"], [])
        assert (reopened.get("oom").state, reopened.get("oom").attempts) == (PENDING, crashes)
    crash_during_a_start(path)
    last = JobStore(path, max_attempts=3)
    assert last.recover() == ([], ["oom"])
    assert last.claim_next() is None  # not retried a fourth time
    entry = last.get("oom")
    assert (entry.state, entry.status_str, entry.attempts) == (FINISHED, "error", 3)
    assert entry.messages[0][1]["exception_type"] == "ServerRestart"


def test_a_clean_stop_does_not_use_up_an_attempt(tmp_path):
    path = tmp_path / "q.sqlite3"
    store = JobStore(path, max_attempts=3)
    store.add(job("long"))
    store.claim_next()
    store.requeue("long")  # the server was stopped cleanly mid-run
    assert store.get("long").attempts == 0
    crash_during_a_start(path)
    assert JobStore(path, max_attempts=3).recover() == (["long"], [])


def test_the_queue_records_the_job_that_crashed_the_server_too_often_and_runs_the_rest(registry, paths, tmp_path):
    path = tmp_path / "q.sqlite3"
    store = JobStore(path, max_attempts=2)
    store.add(job("oom"))
    for _ in range(2):
        store = JobStore(path, max_attempts=2)
        store.recover()
        store.claim_next()
    workflow = api({"1": ("Number", {"value": 1}), "2": ("Show", {"value": ["1", 0]})}).to_api()
    store.add(Job(prompt_id="next", number=0, prompt=workflow, outputs_to_execute=["2"]))
    queue = PromptQueue(Executor(registry, paths), JobStore(path, max_attempts=2))
    queue.start()
    try:
        for _ in range(500):
            if queue.store.get("next").state == FINISHED:
                break
            time.sleep(0.01)
    finally:
        queue.stop()
    assert queue.store.get("oom").status_str == "error"
    assert queue.store.get("next").status_str == "success"
