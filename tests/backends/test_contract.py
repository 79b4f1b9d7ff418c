"""The backend contract: the same prompts give the same results and events on every backend.

Each test runs against the in-process backend and a Ray cluster started on this machine (two
workers each), through the server's own PromptQueue and JobStore.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from engine.jobstore import FINISHED
from tests.backends.helpers import BACKEND_PARAMS, toy_prompt

pytestmark = pytest.mark.parametrize("kind", BACKEND_PARAMS)


def shape(events):
    """Event names with their node, minus what differs run to run (timestamps, image bytes)."""
    return [(name, data.get("node"), data.get("value")) for name, data in events]


def test_events_stream_in_order_and_history_is_written_before_the_terminal_event(kind, make_harness):
    harness = make_harness(kind)
    job = harness.wait_done(harness.submit(toy_prompt(steps=3), "p1", client_id="c"))
    events = harness.of("p1")
    names = [name for name, _ in events]
    assert names[:2] == ["execution_start", "execution_cached"]
    assert names[-2:] == ["execution_success", "executing"] and events[-1][1]["node"] is None
    assert events[-2][1]["history_state"] == events[-1][1]["history_state"] == FINISHED
    assert [d["node"] for n, d in events if n == "executing"] == ["1", "2", "3", "4", None]
    assert [(d["value"], d["max"]) for n, d in events if n == "progress"] == [(1, 3), (2, 3), (3, 3)]
    previews = [d for n, d in events if n == "preview"]
    assert len(previews) == 3 and all(Image.open(io.BytesIO(d["data"])).format == "JPEG" for d in previews)
    assert names.index("preview") < names.index("progress"), "a step's preview comes before its progress"
    assert job.status_str == "success" and job.outputs["3"] == {"values": [4]}
    assert all(client == "c" for name, data, client in harness.events if data.get("prompt_id") == "p1")


def test_output_files_land_in_the_servers_output_folder(kind, make_harness, config):
    harness = make_harness(kind)
    first = harness.wait_done(harness.submit(toy_prompt(seed=1), "p1"))
    second = harness.wait_done(harness.submit(toy_prompt(seed=2), "p2"))
    names = [job.outputs["4"]["images"][0]["filename"] for job in (first, second)]
    assert len(set(names)) == 2, "two prompts never share a file, whichever worker wrote it"
    for name in names:
        assert Image.open(config.output_dir / name).size == (4, 4)
    executed = [d["output"] for n, d in harness.of("p2") if n == "executed" and d["node"] == "4"]
    assert executed == [second.outputs["4"]], "events name the file as the server stored it"


def test_interrupt_stops_the_prompt_but_not_the_worker(kind, make_harness):
    harness = make_harness(kind)
    harness.submit(toy_prompt(steps=2000, delay=0.01), "long")
    harness.wait_for(lambda: any(n == "progress" for n, _ in harness.of("long")), what="first progress")
    worker_id = harness.queue.running_jobs()[0]["worker"]
    pid = harness.worker(worker_id)["pid"]
    assert harness.queue.interrupt("someone-else") is False
    assert harness.queue.interrupt("long") is True
    job = harness.wait_done("long", timeout=20)
    assert job.status_str == "interrupted"
    assert [n for n, _ in harness.of("long")][-2:] == ["execution_interrupted", "executing"]
    again = harness.wait_done(harness.submit(toy_prompt(steps=1), "again"))
    worker = harness.worker(worker_id)
    assert worker["pid"] == pid, "the worker process was not restarted"
    assert worker["checkpoints"] == ["a.safetensors"] and worker["model_loads"] == {"checkpoints/a.safetensors": 1}, \
        "the interrupted worker kept its model: the next prompt on it did not load it again"
    assert "1" in next(d for n, d in harness.of("again") if n == "execution_cached")["nodes"]
    assert again.status_str == "success"


def test_affinity_loads_each_checkpoint_once_over_a_mixed_run(kind, make_harness):
    harness = make_harness(kind)
    ids = [harness.submit(toy_prompt(ckpt=f"{'ab'[i % 2]}.safetensors", seed=i, steps=4, delay=0.03,
                                     load_seconds=0.3), f"mixed-{i}") for i in range(8)]
    for prompt_id in ids:
        assert harness.wait_done(prompt_id).status_str == "success"
    workers = harness.queue.workers()
    loads = [w["model_loads"] for w in workers]
    assert all(count == 1 for per_worker in loads for count in per_worker.values()), loads
    # Each worker keeps to its checkpoint while the other's prompts remain; only at the tail may an
    # idle worker load the other model rather than wait (never both: by then one kind is done).
    assert sum(sum(per_worker.values()) for per_worker in loads) <= 3, loads
    assert {c for w in workers for c in w["checkpoints"]} == {"a.safetensors", "b.safetensors"}
    assert all(w["device"]["type"] == "cpu" and w["state"] == "idle" for w in workers)
