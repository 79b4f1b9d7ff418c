"""A failed run's error is one `ExecutionError`, the same value from the executor to the client and the
history: the `execution_error` event a client receives is the history entry's last message."""

from __future__ import annotations

import dataclasses

from engine.errors import ExecutionError
from tests.server.helpers import connect, events_until_done, graph, next_json

# ComfyUI's execution_error fields; `node_errors` only for a prompt that no longer validates.
FIELDS = {field.name for field in dataclasses.fields(ExecutionError)} - {"node_errors"}


async def test_a_nodes_failure_reaches_the_client_and_the_history_as_one_value(server):
    failing = graph({"1": ("Number", {"value": 1}), "2": ("Fail", {"value": ["1", 0], "fail": True}),
                     "3": ("Show", {"value": ["2", 0]})})
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=me")) as ws:
            await next_json(ws)
            status, body = await api.post("/prompt", {"prompt": failing, "client_id": "me"})
            assert status == 200, body
            sent = dict(await events_until_done(ws, body["prompt_id"]))["execution_error"]
        entry = await api.wait_done(body["prompt_id"])
    assert set(sent) == FIELDS, "ComfyUI's fields, each once"
    assert (sent["node_id"], sent["node_type"], sent["exception_message"]) == ("2", "Fail", "toy failure requested")
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1] == ["execution_error", sent]
