"""POST /prompt, /queue, /interrupt, /history and /jobs, in ComfyUI's shapes."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.server.helpers import connect, graph, slow_graph, sum_graph


async def wait_running(api, prompt_id: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        _, queue = await api.get("/queue")
        if any(item[1] == prompt_id for item in queue["queue_running"]):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{prompt_id} never started")


async def test_post_prompt_answers_id_number_and_empty_node_errors(server):
    async with connect(server) as api:
        status, body = await api.post("/prompt", {"prompt": sum_graph(), "client_id": "c1"})
        assert status == 200
        assert set(body) == {"prompt_id", "number", "node_errors"}
        assert body["node_errors"] == {} and isinstance(body["number"], int)
        entry = await api.wait_done(body["prompt_id"])
        number, prompt_id, prompt, extra_data, outputs_to_execute = entry["prompt"]
        assert (number, prompt_id, outputs_to_execute) == (body["number"], body["prompt_id"], ["4"])
        assert prompt == sum_graph() and extra_data["client_id"] == "c1"
        assert entry["outputs"] == {"4": {"values": [5]}}
        assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
        assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_cached",
                                                               "execution_success"]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded", "application/octet-stream", None])
async def test_json_is_accepted_whatever_the_content_type(server, content_type):
    async with connect(server) as api:
        headers = {"Content-Type": content_type} if content_type else {}
        data = json.dumps({"prompt": sum_graph()}).encode()
        async with api.session.post(server.url("/prompt"), data=data, headers=headers,
                                    skip_auto_headers=["Content-Type"]) as response:
            assert response.status == 200, await response.text()


async def test_invalid_graph_gets_every_error_as_node_errors(server):
    prompt = graph({"1": ("Number", {"value": "many"}), "2": ("Scale", {"value": ["1", 0], "factor": 500}),
                    "3": ("Show", {"value": ["2", 0]}), "4": ("Show", {"value": ["9", 0]})})
    async with connect(server) as api:
        status, body = await api.post("/prompt", {"prompt": prompt})
        assert status == 400
        assert body["error"]["type"] == "prompt_outputs_failed_validation"
        assert set(body["error"]) == {"type", "message", "details", "extra_info"}
        errors = body["node_errors"]
        assert errors["1"]["errors"][0]["type"] == "invalid_input_type"
        assert errors["2"]["errors"][0]["type"] == "value_bigger_than_max"
        assert errors["4"]["errors"][0]["type"] == "bad_linked_input"
        assert errors["1"]["dependent_outputs"] == ["3"] and errors["1"]["class_type"] == "Number"
        assert errors["2"]["errors"][0]["extra_info"]["input_name"] == "factor"
        _, queue = await api.get("/queue")
        assert queue == {"queue_running": [], "queue_pending": []}


async def test_missing_node_type_and_no_outputs(server):
    async with connect(server) as api:
        status, body = await api.post("/prompt", {"prompt": graph({"1": ("NoSuchNode", {}),
                                                                   "2": ("Show", {"value": ["1", 0]})})})
        assert status == 400 and body["error"]["type"] == "missing_node_type"
        assert body["node_errors"]["1"]["errors"][0]["type"] == "missing_node_type"
        status, body = await api.post("/prompt", {"prompt": graph({"1": ("Number", {"value": 1})})})
        assert status == 400 and body["error"]["type"] == "prompt_no_outputs"


@pytest.mark.parametrize("body, error_type", [
    ({}, "no_prompt"),
    ({"prompt": None}, "no_prompt"),
    ([1, 2], "invalid_prompt"),
    ("text", "invalid_prompt"),
    ({"prompt": [1, 2]}, "invalid_prompt"),
    ({"prompt": {"1": {"inputs": {}}}}, "invalid_prompt"),
    ({"prompt": {"1": "Number"}}, "invalid_prompt"),
    ({"prompt": {"1": {"class_type": "Number", "inputs": []}}}, "invalid_prompt"),
    ({"prompt": sum_graph(), "prompt_id": 7}, "invalid_prompt_id"),
    ({"prompt": sum_graph(), "prompt_id": ""}, "invalid_prompt_id"),
    ({"prompt": sum_graph(), "prompt_id": "x" * 201}, "invalid_prompt_id"),
    ({"prompt": sum_graph(), "number": "first"}, "invalid_prompt"),
    ({"prompt": sum_graph(), "number": True}, "invalid_prompt"),
    ({"prompt": sum_graph(), "front": "yes"}, "invalid_prompt"),
    ({"prompt": sum_graph(), "client_id": 5}, "invalid_prompt"),
    ({"prompt": sum_graph(), "extra_data": []}, "invalid_prompt"),
    ({"prompt": sum_graph(), "partial_execution_targets": "4"}, "invalid_prompt"),
    ({"prompt": sum_graph(), "partial_execution_targets": ["99"]}, "invalid_prompt"),
])
async def test_malformed_prompt_requests_are_400_with_a_typed_error(server, body, error_type):
    async with connect(server) as api:
        status, answer = await api.post("/prompt", body)
        assert status == 400, answer
        assert answer["error"]["type"] == error_type and "node_errors" in answer


async def test_malformed_json_and_empty_body(server):
    async with connect(server) as api:
        for data in (b"{not json", b"", b"\xff\xfe", b"[" * 100_000):
            status, body = await api.post("/prompt", data=data)
            assert status == 400 and body["error"]["type"] in ("invalid_json", "invalid_prompt"), body


async def test_a_retried_prompt_id_with_the_same_prompt_is_the_same_prompt(server):
    async with connect(server) as api:
        status, first = await api.post("/prompt", {"prompt": slow_graph(steps=50), "prompt_id": "mine-1"})
        assert status == 200 and first["prompt_id"] == "mine-1"
        status, again = await api.post("/prompt", {"prompt": slow_graph(steps=50), "prompt_id": "mine-1"})
        assert status == 200 and again == first
        _, queue = await api.get("/queue")
        assert [item[1] for item in queue["queue_running"] + queue["queue_pending"]] == ["mine-1"]
        await api.wait_done("mine-1")
        status, after = await api.post("/prompt", {"prompt": slow_graph(steps=50), "prompt_id": "mine-1"})
        assert status == 200 and after == first  # also once it has run: nothing is queued again
        _, queue = await api.get("/queue")
        assert queue == {"queue_running": [], "queue_pending": []}


async def test_a_prompt_id_reused_for_another_prompt_is_refused(server):
    async with connect(server) as api:
        status, body = await api.post("/prompt", {"prompt": sum_graph(), "prompt_id": "mine-1"})
        assert status == 200 and body["prompt_id"] == "mine-1"
        status, body = await api.post("/prompt", {"prompt": sum_graph(a=7), "prompt_id": "mine-1"})
        assert status == 400 and body["error"]["type"] == "invalid_prompt_id"
        assert "different prompt" in body["error"]["details"]


async def test_a_retry_is_answered_even_when_the_queue_is_full(make_server):
    server = make_server(max_queue=1)
    async with connect(server) as api:
        status, first = await api.post("/prompt", {"prompt": slow_graph(steps=200), "prompt_id": "only"})
        assert status == 200
        status, again = await api.post("/prompt", {"prompt": slow_graph(steps=200), "prompt_id": "only"})
        assert status == 200 and again == first
        status, body = await api.post("/prompt", {"prompt": sum_graph()})
        assert status == 503 and body["error"]["type"] == "queue_full"
        await api.post("/interrupt", {})


async def test_partial_execution_targets_run_only_what_they_need(server):
    prompt = {**sum_graph(), "5": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    async with connect(server) as api:
        pid = await api.queue_prompt(prompt, partial_execution_targets=["5"])
        entry = await api.wait_done(pid)
        assert entry["outputs"] == {"5": {"values": [2]}} and entry["prompt"][4] == ["5"]


async def test_ui_format_prompt_is_converted_before_queueing(server):
    ui = {"last_node_id": 2, "last_link_id": 1, "version": 0.4, "links": [[1, 1, 0, 2, 0, "INT"]],
          "nodes": [{"id": 1, "type": "Number", "mode": 0, "widgets_values": [41],
                     "outputs": [{"name": "value", "type": "INT", "links": [1]}]},
                    {"id": 2, "type": "Show", "mode": 0, "inputs": [{"name": "value", "type": "*", "link": 1}]}]}
    async with connect(server) as api:
        pid = await api.queue_prompt(ui)
        entry = await api.wait_done(pid)
        assert entry["outputs"] == {"2": {"values": [41]}}
        assert entry["prompt"][2]["1"]["class_type"] == "Number"
        assert entry["prompt"][3]["extra_pnginfo"]["workflow"] == ui


async def test_get_prompt_and_queue_shapes_while_running(server):
    async with connect(server) as api:
        running = await api.queue_prompt(slow_graph(steps=300), client_id="c")
        await wait_running(api, running)
        pending = await api.queue_prompt(sum_graph(), extra_data={"extra_pnginfo": {"workflow": {"k": 1}}})
        status, body = await api.get("/prompt")
        assert status == 200 and body == {"exec_info": {"queue_remaining": 2}}
        _, queue = await api.get("/queue")
        assert [item[1] for item in queue["queue_running"]] == [running]
        assert [item[1] for item in queue["queue_pending"]] == [pending]
        number, prompt_id, prompt, extra_data, outputs = queue["queue_pending"][0]
        assert prompt == sum_graph() and extra_data == {"extra_pnginfo": {"workflow": {"k": 1}}}
        assert outputs == ["4"] and isinstance(number, int)
        await api.post("/interrupt", {})


async def test_queue_delete_and_clear_remove_pending_prompts(server):
    async with connect(server) as api:
        blocker = await api.queue_prompt(slow_graph(steps=300))
        await wait_running(api, blocker)
        ids = [await api.queue_prompt(sum_graph(a=i)) for i in range(4)]
        status, _ = await api.post("/queue", {"delete": ids[:2]})
        assert status == 200
        _, queue = await api.get("/queue")
        assert [item[1] for item in queue["queue_pending"]] == ids[2:]
        status, _ = await api.post("/queue", {"clear": True})
        _, queue = await api.get("/queue")
        assert queue["queue_pending"] == [] and [i[1] for i in queue["queue_running"]] == [blocker]
        for bad in ({"delete": "x"}, {"delete": [1]}, {"clear": "yes"}, [1]):
            status, body = await api.post("/queue", bad)
            assert status == 400 and "error" in body
        await api.post("/interrupt")
        await api.wait_done(blocker)
        _, history = await api.get("/history")
        assert list(history) == [blocker]


async def test_priority_number_and_front(server):
    async with connect(server) as api:
        blocker = await api.queue_prompt(slow_graph(steps=40))
        await wait_running(api, blocker)
        last = await api.queue_prompt(sum_graph(a=1))
        _, answer = await api.post("/prompt", {"prompt": sum_graph(a=2), "number": -5})
        explicit = answer["prompt_id"]
        first = await api.queue_prompt(sum_graph(a=3), front=True)
        _, queue = await api.get("/queue")
        assert [item[1] for item in queue["queue_pending"]] == [first, explicit, last]
        await api.wait_done(last)
        _, history = await api.get("/history")
        assert list(history) == [blocker, first, explicit, last]


async def test_interrupt_by_prompt_id_only_stops_that_prompt(server):
    async with connect(server) as api:
        running = await api.queue_prompt(slow_graph(steps=500))
        await wait_running(api, running)
        status, body = await api.post("/interrupt", {"prompt_id": "someone-else"})
        assert status == 200 and body["interrupted"] is False
        status, body = await api.post("/interrupt", {"prompt_id": running})
        assert status == 200 and body["interrupted"] is True
        entry = await api.wait_done(running)
        assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
        assert entry["status"]["messages"][-1][0] == "execution_interrupted"
        status, body = await api.post("/interrupt", {"prompt_id": 3})
        assert status == 400


async def test_global_interrupt_with_no_body(server):
    async with connect(server) as api:
        running = await api.queue_prompt(slow_graph(steps=500))
        waiting = await api.queue_prompt(sum_graph())
        await wait_running(api, running)
        status, _ = await api.post("/interrupt")
        assert status == 200
        assert (await api.wait_done(running))["status"]["messages"][-1][0] == "execution_interrupted"
        assert (await api.wait_done(waiting))["status"]["status_str"] == "success"


async def test_history_max_items_offset_delete_and_clear(server):
    async with connect(server) as api:
        ids = []
        for i in range(4):
            ids.append(await api.queue_prompt(sum_graph(a=i)))
            await api.wait_done(ids[-1])
        _, history = await api.get("/history")
        assert list(history) == ids
        _, latest = await api.get("/history?max_items=2")
        assert list(latest) == ids[2:]
        _, page = await api.get("/history?max_items=2&offset=1")
        assert list(page) == ids[1:3]
        _, tail = await api.get("/history?offset=3")
        assert list(tail) == ids[3:]
        status, body = await api.get("/history?max_items=many")
        assert status == 400 and body["error"]["type"] == "invalid_query"
        _, unknown = await api.get("/history/not-a-prompt")
        assert unknown == {}
        await api.post("/history", {"delete": [ids[0]]})
        _, history = await api.get("/history")
        assert list(history) == ids[1:]
        await api.post("/history", {"clear": True})
        assert (await api.get("/history"))[1] == {}


async def test_history_is_empty_until_the_prompt_finishes(server):
    async with connect(server) as api:
        pid = await api.queue_prompt(slow_graph(steps=300))
        await wait_running(api, pid)
        assert (await api.get(f"/history/{pid}"))[1] == {}
        await api.post("/interrupt")


async def test_jobs_report_status_position_outputs_and_errors(server):
    async with connect(server) as api:
        blocker = await api.queue_prompt(slow_graph(steps=300))
        await wait_running(api, blocker)
        waiting = await api.queue_prompt(sum_graph())
        failing = await api.queue_prompt(graph({"1": ("Number", {"value": 1}),
                                                "2": ("Fail", {"value": ["1", 0], "fail": True}),
                                                "3": ("Show", {"value": ["2", 0]})}))
        for _ in range(500):  # running, and past the Number node into Slow
            _, job = await api.get(f"/jobs/{blocker}")
            if job["current_node"] == "2":
                break
            await asyncio.sleep(0.01)
        assert job["status"] == "running" and job["current_node"] == "2"
        _, job = await api.get(f"/jobs/{failing}")
        assert job["status"] == "pending" and job["position"] == 1
        _, listing = await api.get("/jobs?status=pending")
        assert [j["id"] for j in listing["jobs"]] == [failing, waiting]
        await api.post("/interrupt")
        await api.wait_done(failing)
        _, job = await api.get(f"/jobs/{waiting}")
        assert job["status"] == "success" and job["outputs"] == {"4": {"values": [5]}} and job["error"] is None
        _, job = await api.get(f"/jobs/{failing}")
        assert job["status"] == "error" and job["error"]["exception_message"] == "toy failure requested"
        _, job = await api.get(f"/jobs/{blocker}")
        assert job["status"] == "interrupted"
        status, body = await api.get("/jobs/nope")
        assert status == 404 and body["error"]["type"] == "job_not_found"
        status, _ = await api.get("/jobs?status=weird")
        assert status == 400


async def test_a_full_queue_refuses_more_prompts(make_server):
    server = make_server(max_queue=2)
    async with connect(server) as api:
        running = await api.queue_prompt(slow_graph(steps=300))
        await wait_running(api, running)
        await api.queue_prompt(sum_graph())
        status, body = await api.post("/prompt", {"prompt": sum_graph()})
        assert status == 503 and body["error"]["type"] == "queue_full" and body["node_errors"] == {}
        await api.post("/interrupt")
