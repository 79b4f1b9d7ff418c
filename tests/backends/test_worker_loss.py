"""A Ray worker process killed mid-prompt: the prompt restarts elsewhere and is recorded once.

Only the Ray backend can lose a worker without losing the server, so this is Ray's alone.
"""

from __future__ import annotations

import os
import signal

import pytest

from engine.events import EXECUTION_RESTARTING as RESTARTING
from engine.jobstore import FINISHED, PENDING
from tests.backends.helpers import toy_prompt

pytestmark = pytest.mark.ray


@pytest.mark.slow
def test_a_killed_worker_s_prompt_completes_exactly_once_and_nothing_queued_is_lost(make_harness):
    harness = make_harness("ray")
    harness.submit(toy_prompt(steps=60, delay=0.05), "victim", client_id="c")
    queued = [harness.submit(toy_prompt(seed=i, steps=2), f"queued-{i}", client_id="d") for i in range(3)]
    harness.wait_for(lambda: sum(n == "progress" for n, _ in harness.of("victim")) >= 3, what="victim running")
    worker_id = next(r["worker"] for r in harness.queue.running_jobs() if r["prompt_id"] == "victim")
    os.kill(harness.worker(worker_id)["pid"], signal.SIGKILL)

    job = harness.wait_done("victim", timeout=90)
    for prompt_id in queued:
        assert harness.wait_done(prompt_id, timeout=60).status_str == "success"
    assert job.status_str == "success" and job.outputs["3"] == {"values": [61]}
    assert job.attempts == 2
    history = [j.prompt_id for j in harness.store.history()]
    assert sorted(history) == sorted(["victim", *queued]) and len(history) == len(set(history)), "each exactly once"

    names = [n for n, _ in harness.of("victim")]
    restart = names.index(RESTARTING)
    assert names.count("execution_start") == 2 and names.index("execution_start", restart) > restart, \
        "the client saw the prompt restart from the beginning"
    assert names.count("execution_success") == 1 and names[-1] == "executing"
    restarted = next(d for n, d in harness.of("victim") if n == RESTARTING)
    assert restarted["worker"] == worker_id and restarted["attempt"] == 1

    harness.wait_for(lambda: harness.worker(worker_id)["state"] == "idle", what="the dead worker restarted")
    assert all(j.state == FINISHED for j in harness.store.jobs()) and not harness.store.jobs(PENDING)


def test_a_worker_that_cannot_come_back_hands_its_prompt_back_unstarted(ray_cluster):
    from engine.backends.base import WorkerLost
    from engine.backends.ray_backend import RayWorker, WorkerActor
    from engine.jobstore import Job

    nowhere = ray_cluster.remote(WorkerActor).options(resources={"machine-that-left": 1}).remote(None, "x", 0, False)
    worker = RayWorker(nowhere, "stranded", {}, None, start_timeout=1.0)
    try:
        next(worker.run(Job(prompt_id="p", number=0, prompt={})))
    except WorkerLost as exc:
        assert exc.started is False and "did not start the prompt" in str(exc)
    else:
        raise AssertionError("the run should have been handed back")
    finally:
        ray_cluster.kill(nowhere)
