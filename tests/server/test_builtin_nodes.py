"""The shipped workflow through the server with the built-in nodes (SaveImage, metadata, /view)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.config import build_registry
from engine.pngmeta import read_png_metadata
from tests.server.helpers import connect

ROOT = Path(__file__).resolve().parents[2]


async def test_solid_color_workflow_saves_pngs_with_the_prompt_and_never_overwrites(make_server, config, folders):
    config.node_packages = ("nodes",)
    server = make_server(registry=build_registry(config))
    prompt = json.loads((ROOT / "workflows" / "solid_color.json").read_text())
    async with connect(server) as api:
        first = await api.wait_done(
            await api.queue_prompt(prompt, extra_data={"extra_pnginfo": {"workflow": {"w": 1}}}))
        prompt["1"]["inputs"]["width"] = 8
        second = await api.wait_done(await api.queue_prompt(prompt), timeout=30)
        names = [entry["outputs"]["3"]["images"][0]["filename"] for entry in (first, second)]
        assert names == ["solid_color_00001_.png", "solid_color_00002_.png"]
        status, data = await api.get(f"/view?filename={names[0]}&type=output")
        assert status == 200 and data.startswith(b"\x89PNG")
    meta = read_png_metadata(folders["output"] / names[0])
    assert meta.prompt["3"]["class_type"] == "SaveImage" and meta.workflow == {"w": 1}


async def test_txt2img_sends_latent_preview_frames_to_a_client_that_asked(make_server, config, folders):
    from tests.server.helpers import events_until_done, next_json

    config.node_packages = ("nodes",)
    server = make_server(registry=build_registry(config))
    prompt = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    prompt["5"]["inputs"].update(width=64, height=64)
    prompt["3"]["inputs"]["steps"] = 4
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=viewer&previews=1")) as ws:
            await next_json(ws)
            pid = await api.queue_prompt(prompt, client_id="viewer")
            frames: list[bytes] = []
            events = await events_until_done(ws, pid, timeout=100, binary=frames)
    assert any(name == "execution_success" for name, _ in events)
    assert frames, "at least one preview frame (rate-limited) arrives"
    for frame in frames:
        assert int.from_bytes(frame[:4], "big") == 1 and int.from_bytes(frame[4:8], "big") == 1
        assert frame[8:10] == b"\xff\xd8", "a JPEG follows the 8-byte header"
