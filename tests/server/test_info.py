"""Node declarations, system information, model lists, conversion, the API description and static files."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from api.openapi import OPERATIONS
from tests.server.helpers import connect, sum_graph

UI_WORKFLOW = {"last_node_id": 2, "last_link_id": 1, "version": 0.4, "links": [[1, 1, 0, 2, 0, "INT"]],
               "nodes": [{"id": 1, "type": "Number", "mode": 0, "widgets_values": [7],
                          "outputs": [{"name": "value", "type": "INT", "links": [1]}]},
                         {"id": 2, "type": "Show", "mode": 0, "inputs": [{"name": "value", "type": "*", "link": 1}]}]}
EXPECTED_API = {"1": {"class_type": "Number", "inputs": {"value": 7}, "_meta": {"title": "Number"}},
                "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}, "_meta": {"title": "Show"}}}


async def test_object_info_shapes(server):
    async with connect(server) as api:
        status, info = await api.get("/object_info")
        assert status == 200 and {"Number", "Add", "Scale", "Text", "Show", "SolidImage"} <= set(info)
        scale = info["Scale"]
        assert scale["input"]["required"]["factor"] == ["INT", {"default": 2, "min": 0, "max": 100, "step": 1}]
        assert scale["input"]["required"]["value"] == ["INT", {"forceInput": True}]  # a link-only INT
        assert scale["input"]["optional"]["offset"][0] == "FLOAT"
        assert scale["input_order"] == {"required": ["value", "factor"], "optional": ["offset"]}
        assert scale["output"] == ["INT", "FLOAT"] and scale["output_name"] == ["value", "ratio"]
        assert scale["output_is_list"] == [False, False] and scale["output_node"] is False
        assert {"name", "display_name", "description", "category"} <= set(scale)
        assert info["Text"]["input"]["optional"]["style"] == [["plain", "fancy"]]
        assert info["Show"]["output_node"] is True and info["Show"]["input"]["hidden"] == {
            "prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
        status, one = await api.get("/object_info/Scale")
        assert status == 200 and one == {"Scale": scale}


async def test_system_stats_shape(server):
    async with connect(server) as api:
        status, stats = await api.get("/system_stats")
        assert status == 200
        assert {"os", "ram_total", "ram_free", "python_version", "pytorch_version"} <= set(stats["system"])
        assert stats["system"]["ram_total"] > 0
        device = stats["devices"][0]
        assert {"name", "type", "index", "vram_total", "vram_free"} <= set(device)


async def test_embeddings_and_models_list_names(server, folders):
    (folders["models"] / "embeddings").mkdir()
    (folders["models"] / "embeddings" / "easynegative.safetensors").write_bytes(b"x")
    (folders["models"] / "checkpoints" / "sd").mkdir(parents=True)
    (folders["models"] / "checkpoints" / "sd" / "v1.safetensors").write_bytes(b"x")
    (folders["models"] / "checkpoints" / "notes.txt").write_text("not a model")
    async with connect(server) as api:
        assert await api.get("/embeddings") == (200, ["easynegative"])
        status, kinds = await api.get("/models")
        assert status == 200 and {"checkpoints", "vae", "loras", "embeddings"} <= set(kinds)
        assert await api.get("/models/checkpoints") == (200, ["sd/v1.safetensors"])
        assert await api.get("/models/vae") == (200, [])


async def test_free_is_accepted_and_applied_between_prompts(server):
    async with connect(server) as api:
        await api.wait_done(await api.queue_prompt(sum_graph()))
        assert len(server.state.executor.cache) > 0
        status, body = await api.post("/free", {"unload_models": True, "free_memory": True})
        assert status == 200
        entry = await api.wait_done(await api.queue_prompt(sum_graph()))
        assert entry["status"]["messages"][1][1]["nodes"] == [], "the cache was emptied before this run"
        status, _ = await api.post("/free")
        assert status == 200


async def test_feature_flags_and_extensions(server):
    async with connect(server) as api:
        status, flags = await api.get("/features")
        assert status == 200 and flags["supports_preview_metadata"] is True and flags["max_upload_size"] == 2**20
        assert await api.get("/extensions") == (200, [])


async def test_workflow_convert_ui_json_and_png(server):
    async with connect(server) as api:
        status, body = await api.post("/workflow/convert", UI_WORKFLOW)
        assert status == 200 and body == EXPECTED_API
        status, body = await api.post("/workflow/convert", {"workflow": UI_WORKFLOW})
        assert status == 200 and body == EXPECTED_API
        status, body = await api.post("/workflow/convert", sum_graph())
        assert status == 200 and body == sum_graph(), "API format passes through"
        info = PngInfo()
        info.add_text("workflow", json.dumps(UI_WORKFLOW))
        png = io.BytesIO()
        Image.new("RGB", (2, 2)).save(png, "PNG", pnginfo=info)
        status, body = await api.post("/workflow/convert", data=png.getvalue(),
                                      headers={"Content-Type": "image/png"})
        assert status == 200 and body == EXPECTED_API
        status, body = await api.post("/workflow/convert", data=b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
        assert status == 400 and body["error"]["type"] == "invalid_workflow"


async def test_openapi_describes_every_route_and_is_valid(server):
    async with connect(server) as api:
        status, spec = await api.get("/openapi.json")
        assert status == 200 and spec["openapi"].startswith("3.")
    import openapi_spec_validator as validator
    validator.validate(spec)
    served = set()
    for route in server.app.router.routes():
        path = route.resource.canonical
        if route.method in ("GET", "POST", "DELETE") and not path.startswith("/api/") and path not in ("/", "/{name}"):
            served.add((route.method, path))
    assert served == set(OPERATIONS)
    assert all(path in spec["paths"] for _, path in served)


async def test_docs_page_and_index_placeholder(server, settings):
    async with connect(server) as api:
        status, page = await api.get("/docs")
        assert status == 200 and b"openapi.json" in page
        status, page = await api.get("/")
        assert status == 200 and b"sdgraph" in page


async def test_web_folder_is_served_at_the_root(server, settings):
    settings.web_dir.mkdir()
    (settings.web_dir / "index.html").write_text("<h1>editor</h1>")
    (settings.web_dir / "app.js").write_text("console.log(1)")
    (settings.web_dir / ".secret").write_text("hidden")
    async with connect(server) as api:
        assert await api.get("/") == (200, b"<h1>editor</h1>")
        assert await api.get("/app.js") == (200, b"console.log(1)")
        status, _ = await api.get("/.secret")
        assert status == 404
        status, _ = await api.get("/missing.js")
        assert status == 404


@pytest.mark.parametrize("method, path, kind", [(m, p, k) for (m, p), (k, _, _) in OPERATIONS.items()
                                               if "{" not in p and p not in ("/ws",)])
async def test_every_route_is_also_under_api(server, method, path, kind):
    async with connect(server) as api:
        body = {} if method == "POST" else None
        plain = await api.request(method, path, json=body) if body is not None else await api.get(path)
        if body is not None:
            prefixed = await api.request(method, "/api" + path, json=body)
        else:
            prefixed = await api.get("/api" + path)
        assert plain[0] == prefixed[0] and plain[0] != 404, (path, plain, prefixed)
