"""`/ws`: ComfyUI's event sequence, who receives what, and binary previews in ComfyUI's frame layouts."""

from __future__ import annotations

import json
import struct

import aiohttp

from tests.server.helpers import connect, events_until_done, graph, next_json, slow_graph, sum_graph


def names(events):
    return [event for event, _ in events]


async def test_connect_sends_status_with_sid(server):
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=abc")) as ws:
            assert await next_json(ws) == {"type": "status", "data": {
                "status": {"exec_info": {"queue_remaining": 0}}, "sid": "abc"}}
        async with api.session.ws_connect(server.ws_url()) as ws:
            message = await next_json(ws)
            assert message["type"] == "status" and len(message["data"]["sid"]) >= 16


async def test_event_sequence_of_a_run_and_of_a_cached_rerun(server):
    prompt = graph({"1": ("Number", {"value": 2}), "2": ("Slow", {"value": ["1", 0], "steps": 3, "delay": 0}),
                    "3": ("Show", {"value": ["2", 0]})})
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=me")) as ws:
            await next_json(ws)
            pid = await api.queue_prompt(prompt, client_id="me")
            events = [(e, d) for e, d in await events_until_done(ws, pid) if e != "status"]
            assert names(events) == ["execution_start", "execution_cached",
                                     "executing", "executing", "progress", "progress", "progress",
                                     "executing", "executed", "execution_success", "executing"]
            assert all(d["prompt_id"] == pid for _, d in events)
            assert events[1][1]["nodes"] == []
            assert [d["node"] for e, d in events if e == "executing"] == ["1", "2", "3", None]
            assert [(d["value"], d["max"], d["node"]) for e, d in events if e == "progress"] == \
                [(1, 3, "2"), (2, 3, "2"), (3, 3, "2")]
            executed = events[8][1]
            assert executed["node"] == "3" and executed["display_node"] == "3"
            assert executed["output"] == {"values": [5]}

            again = await api.queue_prompt(prompt, client_id="me")
            events = [(e, d) for e, d in await events_until_done(ws, again) if e != "status"]
            assert names(events) == ["execution_start", "execution_cached", "executed",
                                     "execution_success", "executing"]
            assert events[1][1]["nodes"] == ["1", "2", "3"]


async def test_history_is_written_before_success_and_before_the_final_executing(server):
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=me")) as ws:
            await next_json(ws)
            for i in range(5):
                pid = await api.queue_prompt(sum_graph(a=i), client_id="me")
                while True:
                    message = await next_json(ws)
                    final = message["type"] == "executing" and message["data"]["node"] is None
                    if final or message["type"] == "execution_success":
                        _, history = await api.get(f"/history/{pid}")  # read it the moment "done" arrives
                        assert pid in history, message
                    if final:
                        break


async def test_status_reaches_every_client_and_reports_zero_when_done(server):
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=a")) as a, \
                api.session.ws_connect(server.ws_url("?clientId=b")) as b:
            await next_json(a), await next_json(b)
            pid = await api.queue_prompt(sum_graph(), client_id="a")
            await events_until_done(a, pid)
            seen_by_b = []
            while True:
                message = await next_json(b)
                seen_by_b.append(message)
                if message["type"] == "status" and message["data"]["status"]["exec_info"]["queue_remaining"] == 0:
                    break
            assert {m["type"] for m in seen_by_b} == {"status"}
            _, history = await api.get(f"/history/{pid}")
            assert pid in history


async def test_events_go_only_to_the_client_that_queued(server):
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=a")) as a, \
                api.session.ws_connect(server.ws_url("?clientId=b")) as b:
            await next_json(a), await next_json(b)
            pa = await api.queue_prompt(sum_graph(a=1), client_id="a")
            pb = await api.queue_prompt(sum_graph(a=2), client_id="b")
            events_a = await events_until_done(a, pa)
            events_b = await events_until_done(b, pb)
            assert all(d.get("prompt_id") in (None, pa) for _, d in events_a)
            assert all(d.get("prompt_id") in (None, pb) for _, d in events_b)
            assert "execution_success" in names(events_a) and "execution_success" in names(events_b)


async def test_prompt_without_client_id_is_broadcast_like_comfyui(server):
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=a")) as a:
            await next_json(a)
            pid = await api.queue_prompt(sum_graph())
            assert "execution_success" in names(await events_until_done(a, pid))


async def test_error_and_interrupt_events(server):
    failing = graph({"1": ("Number", {"value": 1}), "2": ("Fail", {"value": ["1", 0], "fail": True}),
                     "3": ("Show", {"value": ["2", 0]})})
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=me")) as ws:
            await next_json(ws)
            pid = await api.queue_prompt(failing, client_id="me")
            events = dict(await events_until_done(ws, pid))
            error = events["execution_error"]
            assert error["node_id"] == "2" and error["node_type"] == "Fail"
            assert error["exception_message"] == "toy failure requested" and error["executed"] == ["1"]
            assert {"exception_type", "traceback", "current_inputs"} <= set(error)

            pid = await api.queue_prompt(slow_graph(steps=1000), client_id="me")
            while (await next_json(ws))["type"] != "progress":
                pass
            await api.post("/interrupt", {"prompt_id": pid})
            events = await events_until_done(ws, pid)
            interrupted = dict(events)["execution_interrupted"]
            assert interrupted["node_id"] == "2" and interrupted["node_type"] == "Slow"
            assert names(events)[-1] == "executing" and "execution_success" not in names(events)


def preview_graph(steps: int = 3) -> dict:
    return graph({"1": ("Number", {"value": 1}), "2": ("PreviewSteps", {"value": ["1", 0], "steps": steps}),
                  "3": ("Show", {"value": ["2", 0]})})


async def test_binary_previews_only_to_clients_that_asked(server):
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=me&previews=1")) as legacy, \
                api.session.ws_connect(server.ws_url("?clientId=me")) as plain, \
                api.session.ws_connect(server.ws_url("?clientId=me")) as flagged:
            for ws in (legacy, plain, flagged):
                await next_json(ws)
            await flagged.send_str(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
            reply = await next_json(flagged)
            assert reply["type"] == "feature_flags" and reply["data"]["supports_preview_metadata"] is True
            pid = await api.queue_prompt(preview_graph(), client_id="me")
            frames = {"legacy": [], "plain": [], "flagged": []}
            await events_until_done(legacy, pid, binary=frames["legacy"])
            await events_until_done(plain, pid, binary=frames["plain"])
            await events_until_done(flagged, pid, binary=frames["flagged"])
        assert frames["plain"] == []
        assert len(frames["legacy"]) == 3
        for frame in frames["legacy"]:
            event, image_format = struct.unpack(">II", frame[:8])
            assert (event, image_format) == (1, 2) and frame[8:16] == b"\x89PNG\r\n\x1a\n"
        assert len(frames["flagged"]) == 3
        event, length = struct.unpack(">II", frames["flagged"][0][:8])
        meta = json.loads(frames["flagged"][0][8:8 + length])
        assert event == 4 and meta["prompt_id"] == pid and meta["node_id"] == "2"
        assert meta["image_type"] == "image/png"
        assert frames["flagged"][0][8 + length:].startswith(b"\x89PNG")


async def test_previews_are_rate_limited(make_server):
    server = make_server(preview_interval=10.0)
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=me&previews=1")) as ws:
            await next_json(ws)
            pid = await api.queue_prompt(preview_graph(steps=20), client_id="me")
            frames: list[bytes] = []
            await events_until_done(ws, pid, binary=frames)
            assert len(frames) == 1


async def test_reconnecting_client_learns_the_node_being_executed(server):
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=me")) as ws:
            await next_json(ws)
            pid = await api.queue_prompt(slow_graph(steps=1000), client_id="me")
            while (await next_json(ws))["type"] != "progress":
                pass
        async with api.session.ws_connect(server.ws_url("?clientId=me")) as ws:
            assert (await next_json(ws))["type"] == "status"
            assert await next_json(ws) == {"type": "executing", "data": {
                "node": "2", "display_node": "2", "prompt_id": pid}}
            await api.post("/interrupt")
            await events_until_done(ws, pid)


async def test_client_messages_that_mean_nothing_are_ignored(server):
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=me")) as ws:
            await next_json(ws)
            for text in ("not json", "[1]", '{"type": "other"}', '{"type": "feature_flags", "data": 3}'):
                await ws.send_str(text)
            await ws.send_bytes(b"\x00\x01")
            pid = await api.queue_prompt(sum_graph(), client_id="me")
            assert "execution_success" in names(await events_until_done(ws, pid))


async def test_client_id_too_long_is_refused(server):
    async with connect(server) as api:
        try:
            await api.session.ws_connect(server.ws_url("?clientId=" + "x" * 300))
            raise AssertionError("connected")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 400
