"""Bounded load on loopback: many WebSocket clients queueing at once, each seeing only its own events."""

from __future__ import annotations

import asyncio
import gc

import pytest

from tests.server.helpers import connect, events_until_done, next_json, sum_graph

CLIENTS, PROMPTS_EACH = 50, 4


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


async def one_client(api, server, index: int) -> None:
    client_id = f"client-{index}"
    async with api.session.ws_connect(server.ws_url(f"?clientId={client_id}")) as ws:
        await next_json(ws)
        ids = []
        for k in range(PROMPTS_EACH):
            ids.append(await api.queue_prompt(sum_graph(a=index, b=k), client_id=client_id))
        mine = set(ids)
        for prompt_id in ids:
            events = await events_until_done(ws, prompt_id, timeout=60)
            for event, data in events:
                assert event == "status" or data["prompt_id"] in mine, (client_id, event, data)
            sequence = [e for e, d in events if e != "status" and d["prompt_id"] == prompt_id]
            assert sequence[:2] == ["execution_start", "execution_cached"]
            assert sequence[-3:] == ["executed", "execution_success", "executing"]
            executed = [d for e, d in events if e == "executed" and d["prompt_id"] == prompt_id]
            assert executed[0]["output"] == {"values": [index + ids.index(prompt_id)]}


async def run_round(server) -> None:
    async with connect(server) as api:
        await asyncio.gather(*(one_client(api, server, i) for i in range(CLIENTS)))
        _, history = await api.get("/history")
        assert len(history) % (CLIENTS * PROMPTS_EACH) == 0
        assert (await api.get("/prompt"))[1] == {"exec_info": {"queue_remaining": 0}}


@pytest.mark.slow
async def test_fifty_clients_each_get_their_own_complete_events(server):
    await run_round(server)  # warm-up: code paths, SQLite pages, caches
    gc.collect()
    baseline = rss_bytes()
    started = asyncio.get_running_loop().time()
    await run_round(server)
    elapsed = asyncio.get_running_loop().time() - started
    for _ in range(50):
        if server.state.hub.count == 0:
            break
        await asyncio.sleep(0.02)
    assert server.state.hub.count == 0 and server.state.hub.clients == {}
    gc.collect()
    growth = rss_bytes() - baseline
    print(f"\n{CLIENTS * PROMPTS_EACH} prompts from {CLIENTS} clients in {elapsed:.2f}s; "
          f"RSS growth {growth / 2**20:.1f} MiB")
    assert growth < 20 * 2**20
