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
