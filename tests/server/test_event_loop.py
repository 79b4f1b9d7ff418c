"""Work that grows with a request (reading and encoding the history, validating and queueing a big
graph, parsing a PNG's metadata) runs off the event loop: while it goes on, other requests are still
answered at once. Each test slows down the very function the route calls, so it fails if that call
moves back onto the event loop."""

from __future__ import annotations

import asyncio
import time

import engine.a1111
from tests.server.helpers import connect, sum_graph
from tests.server.test_hostile_inputs import png_chunk, png_with

STALL = 0.6  # seconds the slowed-down work takes


def slowed(function):
    def slow(*args, **kw):
        time.sleep(STALL)  # holds whichever thread runs it, as a big history or graph would
        return function(*args, **kw)
    return slow


async def latency_during(api, heavy) -> float:
    """How long a simple GET takes while `heavy` (a coroutine) is in flight."""
    task = asyncio.ensure_future(heavy)
    await asyncio.sleep(0.1)  # the heavy request has reached its slow part
    started = time.monotonic()
    status, _ = await api.get("/prompt")
    elapsed = time.monotonic() - started
    assert status == 200
    status, answer = await task
    assert status == 200, answer  # the heavy request did reach the slowed-down work
    return elapsed


async def test_reading_the_history_does_not_stall_other_requests(server):
    store = server.state.store
    async with connect(server) as api:
        await api.wait_done(await api.queue_prompt(sum_graph()))
        store._history_rows = slowed(store._history_rows)  # what `/history`'s `history_json` reads
        elapsed = await latency_during(api, api.get("/history"))
    assert elapsed < STALL / 2


async def test_queueing_a_prompt_does_not_stall_other_requests(server):
    store = server.state.store
    store.add = slowed(store.add)
    async with connect(server) as api:
        elapsed = await latency_during(api, api.post("/prompt", {"prompt": sum_graph()}))
    assert elapsed < STALL / 2


async def test_validating_a_prompt_does_not_stall_other_requests(server):
    executor = server.state.executor
    executor.compile = slowed(executor.compile)  # as a 100,000-node graph's validation would
    async with connect(server) as api:
        elapsed = await latency_during(api, api.post("/prompt", {"prompt": sum_graph()}))
    assert elapsed < STALL / 2


async def test_parsing_a_png_for_conversion_does_not_stall_other_requests(server, monkeypatch):
    monkeypatch.setattr(engine.a1111, "parse_a1111_parameters", slowed(engine.a1111.parse_a1111_parameters))
    png = png_with(png_chunk(b"tEXt", b"parameters\0a cat\nSteps: 20, Sampler: Euler, Seed: 1"))
    async with connect(server) as api:
        elapsed = await latency_during(api, api.post("/workflow/convert", data=png))
    assert elapsed < STALL / 2


async def test_reading_a_job_with_its_prompt_does_not_stall_other_requests(server):
    store = server.state.store
    async with connect(server) as api:
        prompt_id = await api.queue_prompt(sum_graph())
        await api.wait_done(prompt_id)
        store.get = slowed(store.get)  # as decoding a 100,000-node prompt would (about a second)
        assert await latency_during(api, api.get(f"/jobs/{prompt_id}")) < STALL / 2
        assert await latency_during(api, api.get(f"/jobs/{prompt_id}?shape=comfyui")) < STALL / 2
        store.jobs = slowed(store.jobs)
        assert await latency_during(api, api.get("/jobs")) < STALL / 2


async def test_history_pages_with_max_items_and_offset(server):
    async with connect(server) as api:
        ids = [await api.queue_prompt(sum_graph(a=i)) for i in range(4)]
        for prompt_id in ids:
            await api.wait_done(prompt_id)
        _, page = await api.get("/history?max_items=2&offset=1")
        assert list(page) == ids[1:3]
        _, latest = await api.get("/history?max_items=1")
        assert list(latest) == ids[3:]
