"""The routes ComfyUI's own editor calls (`--front-end comfyui`), in ComfyUI's shapes, and how its
files are served: at `/`, ours at `/sdgraph/`, its token carried as a same-site cookie."""

from __future__ import annotations

import builtins
import json
import logging
import struct

import aiohttp
import pytest

import server as server_cli
from engine.config import build_registry
from tests.server.helpers import connect, events_until_done, next_json, sum_graph


@pytest.fixture
def comfy_dir(tmp_path):
    folder = tmp_path / "comfy_static"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text("<title>ComfyUI</title>")
    (folder / "assets" / "index.js").write_text("export {}")
    return folder


@pytest.fixture
def comfy_server(make_server, settings, comfy_dir):
    settings.web_dir.mkdir(parents=True)
    (settings.web_dir / "index.html").write_text("<h1>sdgraph editor</h1>")
    return make_server(front_end_dir=comfy_dir)


async def test_comfyui_editor_at_the_root_and_ours_under_sdgraph(comfy_server):
    async with connect(comfy_server) as api:
        assert await api.get("/") == (200, b"<title>ComfyUI</title>")
        assert await api.get("/assets/index.js") == (200, b"export {}")
        assert await api.get("/sdgraph/") == (200, b"<h1>sdgraph editor</h1>")
        status, _ = await api.get("/sdgraph", allow_redirects=False)
        assert status == 302
        status, body = await api.get("/user.css")
        assert status == 200 and body == b""
        status, _ = await api.get("/../etc/passwd")
        assert status == 404
        status, body = await api.get("/api/object_info")  # the API is not shadowed
        assert status == 200 and "Number" in body
        status, body = await api.get("/api/system_stats")  # its editor then asks api.comfy.org nothing
        assert status == 200 and "--disable-api-nodes" in body["system"]["argv"]


async def test_our_editor_stays_at_the_root_without_the_option(server, settings):
    settings.web_dir.mkdir(parents=True)
    (settings.web_dir / "index.html").write_text("<h1>sdgraph editor</h1>")
    async with connect(server) as api:
        assert await api.get("/") == (200, b"<h1>sdgraph editor</h1>")
        status, _ = await api.get("/sdgraph/")
        assert status == 404


async def test_first_start_makes_the_folders_its_editor_lists(comfy_server, settings):
    async with connect(comfy_server) as api:
        assert await api.get("/api/userdata?dir=workflows") == (200, [])
        assert await api.get("/api/userdata?dir=subgraphs") == (200, [])
        status, body = await api.get("/api/userdata/comfy.templates.json")
        assert status == 200 and body in ([], b"[]")


async def test_resources_of_custom_node_packs_are_empty(server):
    async with connect(server) as api:
        assert await api.get("/api/i18n") == (200, {})
        assert await api.get("/api/workflow_templates") == (200, {})
        assert await api.get("/api/global_subgraphs") == (200, {})
        assert await api.get("/api/extensions") == (200, [])
        assert await api.get("/templates/index.json") == (200, [])
        assert await api.get("/templates/index.fr.json") == (200, [])
        assert await api.get("/templates/index_logo.json") == (200, {})
        status, _ = await api.get("/templates/other.json")
        assert status == 404
        status, body = await api.get("/api/userdata/user.css")
        assert status == 200 and body == b""


async def test_model_library_lists_folders_and_files(server, folders):
    checkpoints = folders["models"] / "checkpoints"
    (checkpoints / "sub").mkdir(parents=True)
    (checkpoints / "sub" / "a.safetensors").write_bytes(b"x" * 10)
    (checkpoints / "notes.txt").write_text("not a model")
    async with connect(server) as api:
        status, kinds = await api.get("/api/experiment/models")
        assert status == 200
        by_name = {entry["name"]: entry["folders"] for entry in kinds}
        assert str(checkpoints.resolve()) == by_name["checkpoints"][0]
        status, files = await api.get("/api/experiment/models/checkpoints")
        assert status == 200
        assert [(f["name"], f["pathIndex"], f["size"]) for f in files] == [("sub/a.safetensors", 0, 10)]
        status, _ = await api.get("/api/experiment/models/nonsense")
        assert status == 404


def _safetensors(metadata: dict | None) -> bytes:
    header: dict = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0\0\0\0"


async def test_view_metadata_answers_a_safetensors_header_metadata(server, folders):
    loras = folders["models"] / "loras"
    loras.mkdir()
    (loras / "with.safetensors").write_bytes(_safetensors({"ss_network_dim": "4"}))
    (loras / "without.safetensors").write_bytes(_safetensors(None))
    async with connect(server) as api:
        assert await api.get("/api/view_metadata/loras?filename=with.safetensors") == (200, {"ss_network_dim": "4"})
        for query in ("loras?filename=without.safetensors", "loras?filename=missing.safetensors",
                      "loras?filename=../../x.safetensors", "loras?filename=with.ckpt", "nonsense?filename=a"):
            status, _ = await api.get(f"/api/view_metadata/{query}")
            assert status == 404, query


async def test_logs_raw_and_subscribe(server):
    logging.getLogger("sdgraph.test").warning("hello from the test")
    async with connect(server) as api:
        status, body = await api.get("/internal/logs/raw")
        assert status == 200 and set(body["size"]) == {"cols", "rows"}
        assert any("hello from the test" in entry["m"] and entry["t"] for entry in body["entries"])
        status, text = await api.get("/internal/logs")
        assert status == 200 and "hello from the test" in text
        status, _ = await api.request("PATCH", "/internal/logs/subscribe", json={"clientId": "c1", "enabled": True})
        assert status == 200
        status, _ = await api.request("PATCH", "/internal/logs/subscribe", json={"clientId": "c1"})
        assert status == 400


async def test_a_subscribed_client_gets_each_new_log_record_on_its_socket_until_it_unsubscribes(server):
    log = logging.getLogger("sdgraph.test")
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=c1")) as ws:
            await next_json(ws)  # the status on connect
            await api.request("PATCH", "/internal/logs/subscribe", json={"clientId": "c1", "enabled": True})
            log.warning("while subscribed")
            message = await next_json(ws)
            while not any("while subscribed" in entry["m"] for entry in message["data"].get("entries", [])):
                message = await next_json(ws)
            assert message["type"] == "logs" and set(message["data"]["size"]) == {"cols", "rows"}
            await api.request("PATCH", "/internal/logs/subscribe", json={"clientId": "c1", "enabled": False})
            log.warning("after unsubscribing")  # handed to the server's loop before the prompt below
            prompt_id = await api.queue_prompt(sum_graph(), client_id="c1")
            events = await events_until_done(ws, prompt_id)
            assert not [data for kind, data in events if kind == "logs" and "after unsubscribing" in str(data)]


async def test_object_info_of_the_built_in_nodes_has_every_field_comfyuis_editor_reads(make_server, config):
    config.node_packages = ("nodes",)
    async with connect(make_server(registry=build_registry(config))) as api:
        status, info = await api.get("/api/object_info")
    assert status == 200
    for name, node in info.items():
        assert {"input", "input_order", "output", "output_is_list", "output_name", "name", "display_name",
                "description", "python_module", "category", "output_node", "deprecated",
                "experimental"} <= set(node), name
    sampler, encode = info["KSampler"], info["CLIPTextEncode"]
    assert sampler["display_name"] == "KSampler" and sampler["category"] == "sampling"
    assert sampler["python_module"].startswith("nodes.") and sampler["experimental"] is False
    assert sampler["input_order"]["required"][:3] == ["model", "seed", "steps"]
    assert sampler["input"]["required"]["seed"][1]["control_after_generate"] is True
    assert encode["input"]["required"]["text"][1]["multiline"] is True
    assert encode["input"]["required"]["text"][1]["tooltip"]
    assert info["LoadImage"]["input"]["required"]["image"][1]["image_upload"] is True
    assert info["SaveImage"]["output_node"] is True and info["SaveImage"]["output_is_list"] == []
    assert info["VAEDecode"]["output_is_list"] == [False]
    assert info["CheckpointLoader"]["deprecated"] is True  # as ComfyUI marks it


async def test_job_list_in_comfyui_shape(server):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 2}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    async with connect(server) as api:
        prompt_id = await api.queue_prompt(prompt)
        await api.wait_done(prompt_id)
        status, body = await api.get("/api/jobs?status=completed,failed,cancelled&limit=64&offset=0")
        assert status == 200
        assert body["pagination"] == {"offset": 0, "limit": 64, "total": 1, "has_more": False}
        job = body["jobs"][0]
        assert job["id"] == prompt_id and job["status"] == "completed" and job["create_time"] > 0
        status, body = await api.get("/api/jobs?status=in_progress,pending&limit=200&offset=0")
        assert status == 200 and body["jobs"] == []
        status, body = await api.get("/api/jobs?status=completed,bogus")
        assert status == 400
        status, body = await api.get("/api/jobs?status=finished")  # our own form stays
        assert status == 200 and body["jobs"][0]["status"] == "success"


async def test_token_given_to_the_page_becomes_a_same_site_cookie(make_server, settings, comfy_dir):
    token_server = make_server(front_end_dir=comfy_dir, token="T0K")
    async with connect(token_server, cookie_jar=aiohttp.CookieJar(unsafe=True)) as api:  # unsafe: an IP host
        status, _ = await api.get("/api/object_info")
        assert status == 401
        status, _ = await api.get("/?token=wrong")
        assert status == 401
        async with api.session.get(token_server.url("/?token=T0K")) as response:
            assert response.status == 200
            cookie = response.cookies["sdgraph_token"]
            assert cookie.value == "T0K" and cookie["httponly"] and cookie["samesite"] == "Strict"
        status, _ = await api.get("/api/object_info")  # the session now carries the cookie
        assert status == 200
        async with api.session.ws_connect(token_server.ws_url("?clientId=page")) as ws:  # and so does its socket
            assert (await next_json(ws))["type"] == "status"
        origin = {"Origin": "http://evil.example"}
        status, body = await api.post("/api/prompt", {"prompt": {}}, headers=origin)
        assert status == 403 and body["error"]["type"] == "origin_not_allowed"


def test_front_end_option_without_the_package_says_what_to_install(monkeypatch, capsys, tmp_path):
    real_import = builtins.__import__

    def without_package(name, *args, **kwargs):
        if name == "comfyui_frontend_package":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_package)
    code = server_cli.main(["--front-end", "comfyui", "--user-dir", str(tmp_path / "user")])
    assert code == 2
    assert 'pip install ".[comfyui-frontend]"' in capsys.readouterr().err
