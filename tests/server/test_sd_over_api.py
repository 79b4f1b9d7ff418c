"""Stable Diffusion over the API, as a ComfyUI client meets it: the real nodes on the built-in
tiny checkpoint, driven over HTTP and a real WebSocket."""

from __future__ import annotations

import io
import json
from pathlib import Path

import aiohttp
from PIL import Image

from engine.config import build_registry
from tests.server.helpers import connect, events_until_done, next_json

ROOT = Path(__file__).resolve().parents[2]
STEPS = 3


def small_txt2img(seed: int = 1) -> dict:
    prompt = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    prompt["4"]["inputs"]["ckpt_name"] = "tiny-sd15-random.safetensors"
    prompt["5"]["inputs"].update(width=64, height=64, batch_size=1)
    prompt["3"]["inputs"].update(steps=STEPS, seed=seed, sampler_name="euler", scheduler="normal")
    return prompt


def mine(events: list, pid: str) -> list:
    return [(name, data) for name, data in events if name != "status" and data.get("prompt_id") == pid]


async def test_txt2img_event_sequence_then_a_seed_change_reuses_loader_and_encoders(make_server, config):
    config.node_packages = ("nodes",)
    server = make_server(registry=build_registry(config))
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=c1")) as ws:
            await next_json(ws)
            pid = await api.queue_prompt(small_txt2img(seed=1), client_id="c1")
            events = mine(await events_until_done(ws, pid, timeout=100), pid)
            names = [name for name, _ in events]
            assert names[:2] == ["execution_start", "execution_cached"]
            assert events[1][1]["nodes"] == []
            assert names[-2:] == ["execution_success", "executing"] and events[-1][1]["node"] is None
            assert sorted(d["node"] for n, d in events if n == "executing" and d["node"]) == \
                ["3", "4", "5", "6", "7", "8", "9"]
            progress = [(d["value"], d["max"], d["node"]) for n, d in events if n == "progress"]
            assert progress == [(i, STEPS, "3") for i in range(1, STEPS + 1)]
            executed = [d for n, d in events if n == "executed"]
            assert [d["node"] for d in executed] == ["9"]
            image = executed[0]["output"]["images"][0]
            status, png = await api.get(f"/view?filename={image['filename']}&type=output")
            assert status == 200 and Image.open(io.BytesIO(png)).size == (64, 64)
            history = (await api.get(f"/history/{pid}"))[1][pid]
            assert history["status"]["status_str"] == "success"

            again = await api.queue_prompt(small_txt2img(seed=2), client_id="c1")
            events = mine(await events_until_done(ws, again, timeout=100), again)
            cached = next(d for n, d in events if n == "execution_cached")["nodes"]
            assert sorted(cached) == ["4", "5", "6", "7"], "the loader and both text encoders are cache hits"
            assert sorted(d["node"] for n, d in events if n == "executing" and d["node"]) == ["3", "8", "9"]


async def test_upload_then_img2img_from_the_uploaded_image(make_server, config, folders):
    config.node_packages = ("nodes",)
    server = make_server(registry=build_registry(config))
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(picture, format="PNG")
    body = aiohttp.FormData()
    body.add_field("image", picture.getvalue(), filename="red.png", content_type="image/png")
    async with connect(server) as api:
        status, uploaded = await api.post("/upload/image", data=body)
        assert status == 200 and uploaded["name"] == "red.png"
        prompt = small_txt2img()
        prompt["10"] = {"class_type": "LoadImage", "inputs": {"image": uploaded["name"]}}
        prompt["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
        prompt["3"]["inputs"].update(latent_image=["11", 0], denoise=0.6)
        del prompt["5"]
        entry = await api.wait_done(await api.queue_prompt(prompt), timeout=100)
        assert entry["status"]["status_str"] == "success", entry["status"]
        assert (folders["output"] / entry["outputs"]["9"]["images"][0]["filename"]).is_file()


async def test_a_bad_sampler_name_is_refused_with_node_errors(make_server, config):
    config.node_packages = ("nodes",)
    server = make_server(registry=build_registry(config))
    prompt = small_txt2img()
    prompt["3"]["inputs"]["sampler_name"] = "warp_drive"
    async with connect(server) as api:
        status, body = await api.post("/prompt", {"prompt": prompt})
    assert status == 400
    assert body["node_errors"]["3"]["errors"][0]["type"] == "value_not_in_list"
    assert body["node_errors"]["3"]["dependent_outputs"] == ["9"]
