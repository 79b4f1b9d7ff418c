"""Every error answer has one shape, whichever layer built it: `POST /prompt`'s request checks, its
admission (run in a worker thread), and the error middleware that answers any route's `ApiError`."""

from __future__ import annotations

from tests.server.helpers import connect, slow_graph, sum_graph

ERROR_KEYS = {"type", "message", "details", "extra_info"}


def assert_error_shape(body: dict, error_type: str) -> None:
    assert set(body["error"]) == ERROR_KEYS, body
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], str) and isinstance(body["error"]["extra_info"], dict)


async def test_prompt_rejections_and_other_routes_errors_share_one_shape(make_server):
    server = make_server(max_queue=1)
    async with connect(server) as api:
        # The request itself: not JSON (answered before anything is read into a job).
        status, body = await api.post("/prompt", data=b"{not json")
        assert status == 400 and set(body) == {"error", "node_errors"} and body["node_errors"] == {}
        assert_error_shape(body, "invalid_json")
        # Admission, in the worker thread: a prompt_id taken by another prompt, then a full queue.
        status, first = await api.post("/prompt", {"prompt": slow_graph(steps=200), "prompt_id": "only"})
        assert status == 200, first
        status, body = await api.post("/prompt", {"prompt": sum_graph(a=7), "prompt_id": "only"})
        assert status == 400 and set(body) == {"error", "node_errors"} and body["node_errors"] == {}
        assert_error_shape(body, "invalid_prompt_id")
        status, body = await api.post("/prompt", {"prompt": sum_graph()})
        assert status == 503 and set(body) == {"error", "node_errors"} and body["node_errors"] == {}
        assert_error_shape(body, "queue_full")
        # Another route's ApiError, answered by the middleware (no node_errors there).
        status, body = await api.post("/queue", [1, 2])
        assert status == 400 and set(body) == {"error"}
        assert_error_shape(body, "invalid_json")
        await api.post("/interrupt", {})
