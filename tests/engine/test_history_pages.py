"""A long history is read in pages (the store's lock is never held for all of it), with the same result."""

from __future__ import annotations

import pytest

from engine import jobstore
from engine.jobstore import Job, JobStore


@pytest.fixture
def store(tmp_path, monkeypatch) -> JobStore:
    monkeypatch.setattr(jobstore, "HISTORY_PAGE", 7)
    store = JobStore(tmp_path / "jobs.db")
    for i in range(30):
        store.add(Job(prompt_id=f"p{i:02d}", number=0, prompt={}))
        store.claim_next()
        store.finish(f"p{i:02d}", "success", {}, [])
    store.delete_history(["p03", "p11"])
    return store


def ids(jobs) -> list[str]:
    return [job.prompt_id for job in jobs]


def test_the_whole_history_comes_in_order_across_pages(store):
    assert ids(store.history()) == [f"p{i:02d}" for i in range(30) if i not in (3, 11)]


@pytest.mark.parametrize("max_items, offset, first, count", [(10, None, "p20", 10), (10, 0, "p00", 10),
                                                             (5, 12, "p14", 5), (None, 25, "p27", 3),
                                                             (0, None, None, 0), (10, 40, None, 0)])
def test_max_items_and_offset_as_comfyui(store, max_items, offset, first, count):
    jobs = store.history(max_items, offset)
    assert len(jobs) == count and (ids(jobs)[:1] == [first] if first else jobs == [])


def test_the_history_json_is_comfyuis_entry_spliced_from_the_stored_json(tmp_path):
    import json

    store = JobStore(tmp_path / "jobs.db")
    prompt = {"1": {"class_type": "Number", "inputs": {"value": "é \" \\n"}}}
    store.add(Job(prompt_id="a", number=0, prompt=prompt, extra_data={"client_id": "c"}, outputs_to_execute=["1"]),
              number=2.5)
    store.claim_next()
    store.finish("a", "interrupted", {"1": {"values": [1]}}, [["execution_interrupted", {"prompt_id": "a"}]])
    expected = {"a": {"prompt": [2.5, "a", prompt, {"client_id": "c"}, ["1"]], "outputs": {"1": {"values": [1]}},
                      "status": {"status_str": "error", "completed": False,
                                 "messages": [["execution_interrupted", {"prompt_id": "a"}]]},
                      "meta": {"1": {"node_id": "1", "display_node": "1"}}}}
    assert json.loads(store.history_json()) == expected
    assert json.loads(store.history_item_json("a")) == expected and store.history_item_json("b") == "{}"
