"""`python server.py` as a real process: kill -9 mid-queue, restart, nothing lost or run twice; a
prompt that keeps killing the server (as the OOM killer would) is given up; a retried prompt_id is safe."""

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


OUT_OF_MEMORY_PACK = '''
import os
import signal
import time
from pathlib import Path

from engine.declare import node
from engine.types import Link


@node("OutOfMemory", category="toy/debug", output_node=True)
class OutOfMemory:
    """Ends its own process with SIGKILL, as the kernel's OOM killer ends a server that ran out of
    memory; it waits for the test to create `go` in the working folder, so what follows is queued."""

    value = Link("INT")

    def run(self, ctx, value):
        deadline = time.monotonic() + 60
        while not Path("go").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.fixture
def processes():
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        if proc.process and proc.process.poll() is None:
            proc.stop()
        elif proc.process:
            proc.process.stdout.close()


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


def test_a_prompt_that_gets_the_server_oom_killed_is_given_up_after_three_starts(workdir, processes):
    (workdir / "custom_nodes" / "out_of_memory.py").write_text(OUT_OF_MEMORY_PACK)
    first = ServerProcess(workdir).start()
    processes.append(first)
    oom = {"1": {"class_type": "Number", "inputs": {"value": 1}},
           "2": {"class_type": "OutOfMemory", "inputs": {"value": ["1", 0]}}}
    first.call("POST", "/prompt", {"prompt": oom, "prompt_id": "oom"})
    after = first.call("POST", "/prompt", {"prompt": sum_graph()})["prompt_id"]
    (workdir / "go").touch()
    assert first.process.wait(60) == -signal.SIGKILL
    for _ in range(2):  # each start takes the prompt up again, and it kills the server again
        again = ServerProcess(workdir)
        processes.append(again)
        try:
            again.start()
        except AssertionError:
            pass  # killed before it printed its address
        assert again.process.wait(60) == -signal.SIGKILL

    last = ServerProcess(workdir).start()  # the third crash used up the prompt's attempts
    processes.append(last)
    history = last.wait_for(lambda: last.call("GET", "/history/oom"))
    assert history["oom"]["status"]["status_str"] == "error"
    assert "stopped 3 times" in history["oom"]["status"]["messages"][-1][1]["exception_message"]
    done = last.wait_for(lambda: last.call("GET", f"/history/{after}"))
    assert done[after]["status"]["status_str"] == "success"  # the prompt queued behind it still runs
    assert last.call("GET", "/queue") == {"queue_running": [], "queue_pending": []}
    assert last.stop(signal.SIGTERM) == 0


def test_a_client_that_retries_its_prompt_id_after_a_kill_gets_the_same_prompt_run_once(workdir, processes):
    first = ServerProcess(workdir).start()
    processes.append(first)
    body = {"prompt": slow_graph(steps=50, delay=0.01), "prompt_id": "retry-1", "client_id": "c"}
    first.call("POST", "/prompt", body)  # stored; the client never saw this answer
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    second = ServerProcess(workdir).start()
    processes.append(second)
    assert second.call("POST", "/prompt", body)["prompt_id"] == "retry-1"
    second.wait_for(lambda: second.call("GET", "/history/retry-1"))
    assert second.call("POST", "/prompt", body)["prompt_id"] == "retry-1"  # also once it has run
    history = second.call("GET", "/history")
    assert list(history) == ["retry-1"] and history["retry-1"]["status"]["status_str"] == "success"
    assert [job["id"] for job in second.call("GET", "/jobs")["jobs"]] == ["retry-1"]
    assert second.call("GET", "/queue") == {"queue_running": [], "queue_pending": []}
    assert second.stop(signal.SIGTERM) == 0
