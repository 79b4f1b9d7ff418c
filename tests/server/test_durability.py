"""`python server.py` as a real process: kill -9 mid-queue, restart, nothing lost or run twice."""

from __future__ import annotations

import shutil
import signal
import time

import pytest

from tests.server.helpers import TOY_PACK, ServerProcess, slow_graph, sum_graph

pytestmark = pytest.mark.slow  # server subprocesses, started and killed


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "custom_nodes").mkdir()
    shutil.copy(TOY_PACK, tmp_path / "custom_nodes" / "toy_pack.py")
    return tmp_path


@pytest.fixture
def processes():
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        if proc.process and proc.process.poll() is None:
            proc.stop()


def test_kill_9_during_the_first_of_five_prompts_loses_nothing(workdir, processes):
    first = ServerProcess(workdir).start()
    processes.append(first)
    ids = [first.call("POST", "/prompt", {"prompt": slow_graph(steps=100, delay=0.01), "client_id": "c"})["prompt_id"]]
    ids += [first.call("POST", "/prompt", {"prompt": sum_graph(a=i)})["prompt_id"] for i in range(4)]
    first.wait_for(lambda: [item[1] for item in first.call("GET", "/queue")["queue_running"]] == ids[:1])
    first.wait_for(lambda: first.call("GET", f"/jobs/{ids[0]}").get("current_node") == "2")
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    second = ServerProcess(workdir).start()
    processes.append(second)
    queue = second.call("GET", "/queue")
    assert {item[1] for item in queue["queue_running"] + queue["queue_pending"]} <= set(ids)
    history = second.wait_for(lambda: (h := second.call("GET", "/history")) and len(h) == 5 and h)
    assert list(history) == ids, "each prompt exactly once, in queue order"
    assert all(entry["status"]["status_str"] == "success" for entry in history.values())
    assert history[ids[0]]["outputs"] == {"3": {"values": [101]}}
    jobs = second.call("GET", "/jobs")["jobs"]
    assert sorted(job["id"] for job in jobs) == sorted(ids)
    assert second.call("GET", "/prompt") == {"exec_info": {"queue_remaining": 0}}
    assert second.stop(signal.SIGTERM) == 0


def test_clean_stop_puts_the_running_prompt_back_and_keeps_history(workdir, processes):
    first = ServerProcess(workdir).start()
    processes.append(first)
    done = first.call("POST", "/prompt", {"prompt": sum_graph()})["prompt_id"]
    first.wait_for(lambda: first.call("GET", f"/history/{done}"))
    slow = first.call("POST", "/prompt", {"prompt": slow_graph(steps=300, delay=0.01)})["prompt_id"]
    first.wait_for(lambda: first.call("GET", f"/jobs/{slow}")["status"] == "running")
    started = time.monotonic()
    assert first.stop(signal.SIGINT) == 0
    assert time.monotonic() - started < 5, "Ctrl-C interrupts the running prompt instead of waiting for it"

    second = ServerProcess(workdir).start()
    processes.append(second)
    assert done in second.call("GET", "/history")
    history = second.wait_for(lambda: second.call("GET", f"/history/{slow}"))
    assert history[slow]["status"]["status_str"] == "success"
    second.stop(signal.SIGTERM)
