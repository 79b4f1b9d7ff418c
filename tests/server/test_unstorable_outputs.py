"""A node whose UI result cannot be written as JSON fails like any other node: its prompt ends as an
error naming it, and the queue goes on with the next prompt (it once stayed `running` for good)."""

from __future__ import annotations

import json

import pytest

from api.websocket import Connection, Hub
from tests.server.helpers import connect, events_until_done, graph, next_json, sum_graph


def unstorable(holds: str) -> dict:
    return graph({"1": ("Number", {"value": 7}), "2": ("UnstorableUI", {"value": ["1", 0], "holds": holds})})


@pytest.mark.parametrize("holds, reason", [("set", "set"), ("nan", "float")])
async def test_an_unstorable_ui_result_is_an_error_of_its_node_and_the_queue_goes_on(server, holds, reason):
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=me")) as ws:
            await next_json(ws)
            bad = await api.queue_prompt(unstorable(holds), client_id="me")
            events = await events_until_done(ws, bad, timeout=30)
            good = await api.queue_prompt(sum_graph(), client_id="me")
            later = dict(await events_until_done(ws, good, timeout=30))
        failed = await api.wait_done(bad, timeout=30)
        succeeded = await api.wait_done(good, timeout=30)
        _, queue = await api.get("/queue")
    sent = dict(events)
    assert "executed" not in sent, "the unstorable result is never sent"
    error = sent["execution_error"]
    assert (error["prompt_id"], error["node_id"], error["node_type"]) == (bad, "2", "UnstorableUI")
    assert "cannot be stored as JSON" in error["exception_message"] and reason in error["exception_message"]
    assert failed["status"]["status_str"] == "error" and failed["status"]["completed"] is False
    assert failed["status"]["messages"][-1] == ["execution_error", error]
    assert failed["outputs"] == {}
    assert "execution_success" in later
    assert succeeded["status"]["status_str"] == "success" and succeeded["outputs"] == {"4": {"values": [5]}}
    assert queue == {"queue_running": [], "queue_pending": []}


async def test_the_event_sender_drops_an_event_json_cannot_carry_and_sends_the_next():
    hub = Hub()
    conn = Connection(ws=None, client_id="me", previews=None, outbox_size=8)  # type: ignore[arg-type]
    hub.register(conn)
    hub.publish("executed", {"node": "2", "output": {("not", "a", "key"): 1}}, "me")
    hub.publish("executed", {"node": "3", "output": {"values": [1]}}, "me")
    assert conn.outbox.qsize() == 1 and not conn.closing
    assert json.loads(conn.outbox.get_nowait()) == {"type": "executed",
                                                    "data": {"node": "3", "output": {"values": [1]}}}
