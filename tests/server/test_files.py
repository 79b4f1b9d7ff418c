"""/view and uploads: ComfyUI's renaming rule, previews and channels, and no way out of a folder."""

from __future__ import annotations

import io
import json
import os

import aiohttp
import pytest
from PIL import Image

from tests.server.helpers import connect, graph
from tests.server.toy_server_nodes import png_bytes


def form(data: bytes, filename: str = "cat.png", **fields: str) -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("image", data, filename=filename, content_type="image/png")
    for key, value in fields.items():
        body.add_field(key, value)
    return body


def raw_form(data: bytes, filename: str) -> tuple[bytes, dict[str, str]]:
    """A multipart body written by hand: aiohttp's FormData would percent-encode a '/' in the name."""
    boundary = "----testboundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), {
        "Content-Type": f"multipart/form-data; boundary={boundary}"}


def image_bytes(size=(8, 8), mode="RGBA", color=(10, 20, 30, 40), fmt="PNG") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt)
    return out.getvalue()


async def test_upload_renames_a_different_file_and_reuses_an_identical_one(server, folders):
    async with connect(server) as api:
        first, second = png_bytes(0x112233), png_bytes(0x445566)
        status, body = await api.post("/upload/image", data=form(first))
        assert status == 200 and body == {"name": "cat.png", "subfolder": "", "type": "input"}
        _, body = await api.post("/upload/image", data=form(second))
        assert body["name"] == "cat (1).png"
        _, body = await api.post("/upload/image", data=form(png_bytes(0x778899)))
        assert body["name"] == "cat (2).png"
        _, body = await api.post("/upload/image", data=form(second))
        assert body["name"] == "cat (1).png"
        assert (folders["input"] / "cat.png").read_bytes() == first
        _, body = await api.post("/upload/image", data=form(second, overwrite="true"))
        assert body["name"] == "cat.png" and (folders["input"] / "cat.png").read_bytes() == second
        _, body = await api.post("/upload/image", data=form(first, subfolder="pets/cats", type="temp"))
        assert body == {"name": "cat.png", "subfolder": "pets/cats", "type": "temp"}
        assert (folders["temp"] / "pets" / "cats" / "cat.png").read_bytes() == first


async def test_uploaded_image_can_be_viewed_back(server):
    async with connect(server) as api:
        data = png_bytes(0x123456)
        await api.post("/upload/image", data=form(data, subfolder="x"))
        status, body = await api.get("/view?filename=cat.png&subfolder=x&type=input")
        assert status == 200 and body == data


async def test_view_preview_webp_and_channels(server, folders):
    (folders["output"] / "pic.png").write_bytes(image_bytes(color=(200, 100, 50, 77)))
    async with connect(server) as api:
        async with api.session.get(server.url("/view?filename=pic.png&preview=webp;90")) as response:
            assert response.status == 200 and response.content_type == "image/webp"
            assert Image.open(io.BytesIO(await response.read())).format == "WEBP"
        async with api.session.get(server.url("/view?filename=pic.png&preview=jpeg;50&type=output")) as response:
            assert response.content_type == "image/jpeg"
        _, body = await api.get("/view?filename=pic.png&channel=rgb")
        assert Image.open(io.BytesIO(body)).mode == "RGB"
        _, body = await api.get("/view?filename=pic.png&channel=a")
        alpha = Image.open(io.BytesIO(body))
        assert alpha.mode == "RGBA" and alpha.getpixel((0, 0)) == (0, 0, 0, 77)
        for query, error in (("preview=gif;3", "invalid_preview"), ("preview=webp;x", "invalid_preview"),
                             ("channel=cmyk", "invalid_channel"), ("type=models", "invalid_type")):
            status, body = await api.get(f"/view?filename=pic.png&{query}")
            assert status == 400 and body["error"]["type"] == error


async def test_view_missing_and_bad_requests(server):
    async with connect(server) as api:
        status, body = await api.get("/view?filename=nothing.png")
        assert status == 404 and body["error"]["type"] == "file_not_found"
        status, body = await api.get("/view")
        assert status == 400 and body["error"]["type"] == "missing_filename"


@pytest.mark.parametrize("query", [
    "filename=../secret.txt",
    "filename=../../secret.txt&type=input",
    "filename=secret.txt&subfolder=..",
    "filename=secret.txt&subfolder=../",
    "filename=x&subfolder=/etc",
    "filename=/etc/passwd",
    "filename=%2e%2e%2fsecret.txt",
    "filename=..%2Fsecret.txt",
    "filename=secret.txt&subfolder=%2e%2e",
    "filename=link.txt",
    "filename=secret.txt&subfolder=linkdir",
    "filename=a%00b.png",
])
async def test_view_refuses_every_way_out_of_the_folder(server, folders, query):
    secret = folders["output"].parent / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, folders["output"] / "link.txt")
    os.symlink(folders["output"].parent, folders["output"] / "linkdir")
    async with connect(server) as api:
        status, body = await api.get(f"/view?{query}")
        assert status in (400, 403), body
        assert b"top secret" not in json.dumps(body).encode()
        assert body["error"]["type"] in ("path_not_allowed", "invalid_type")


async def test_encoded_path_in_the_url_itself_does_not_escape(server, folders):
    (folders["output"].parent / "secret.txt").write_text("top secret")
    async with connect(server) as api:
        for path in ("/view/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/static/%2e%2e/%2e%2e/x"):
            async with api.session.get(server.url(path)) as response:
                assert response.status in (400, 403, 404) and b"top secret" not in await response.read()


@pytest.mark.parametrize("filename", ["../evil.png", "a/b.png", "..", ".hidden.png", "x\\\\y.png"])
async def test_upload_refuses_names_with_folders(server, folders, filename):
    async with connect(server) as api:
        data, headers = raw_form(png_bytes(1), filename)
        status, body = await api.post("/upload/image", data=data, headers=headers)
        assert status == 400 and body["error"]["type"] == "invalid_filename"
    assert not (folders["input"].parent / "evil.png").exists()


@pytest.mark.parametrize("subfolder", ["../out", "/tmp", "link"])
async def test_upload_refuses_subfolders_leaving_the_input_folder(server, folders, subfolder):
    os.symlink(folders["output"], folders["input"] / "link")
    async with connect(server) as api:
        status, body = await api.post("/upload/image", data=form(png_bytes(1), subfolder=subfolder))
        assert status == 403 and body["error"]["type"] == "path_not_allowed"
    assert not list(folders["output"].iterdir())


async def test_upload_limits_bytes_pixels_and_requires_an_image(server):
    async with connect(server) as api:
        status, body = await api.post("/upload/image", data=form(b"\0" * (2**20 + 10)))
        assert status == 413 and body["error"]["type"] == "upload_too_large"
        status, body = await api.post("/upload/image", data=form(image_bytes(size=(1024, 1024), mode="L", color=0)))
        assert status == 413 and body["error"]["type"] == "image_too_large"
        status, body = await api.post("/upload/image", data=form(b"not an image at all"))
        assert status == 400 and body["error"]["type"] == "invalid_image"
        status, body = await api.post("/upload/image", {"image": "x"})
        assert status == 400 and body["error"]["type"] == "invalid_form"
        empty = aiohttp.FormData(default_to_multipart=True)
        empty.add_field("subfolder", "x")
        status, body = await api.post("/upload/image", data=empty)
        assert status == 400 and body["error"]["type"] == "missing_image"


async def test_mask_upload_merges_alpha_into_the_original(server, folders):
    (folders["input"] / "photo.png").write_bytes(image_bytes(color=(200, 100, 50, 255)))
    mask = image_bytes(color=(0, 0, 0, 30))
    async with connect(server) as api:
        ref = json.dumps({"filename": "photo.png", "subfolder": "", "type": "input"})
        status, body = await api.post("/upload/mask", data=form(mask, filename="photo_mask.png", original_ref=ref))
        assert status == 200 and body == {"name": "photo_mask.png", "subfolder": "", "type": "input"}
        merged = Image.open(folders["input"] / "photo_mask.png")
        assert merged.getpixel((0, 0)) == (200, 100, 50, 30)
        for bad_ref, code in (("not json", 400), (json.dumps({"filename": "../x.png"}), 403),
                              (json.dumps({"filename": "missing.png"}), 404)):
            status, body = await api.post("/upload/mask", data=form(mask, original_ref=bad_ref))
            assert status == code, body


async def test_websocket_example_client_flow(server):
    """POST /prompt with client_id, wait for executing null, GET /history, GET /view: ComfyUI's example."""
    prompt = graph({"1": ("SolidImage", {"color": 0xFF0000, "size": 4, "filename_prefix": "example"})})
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=example-client")) as ws:
            _, answer = await api.post("/prompt", data=json.dumps({"prompt": prompt, "client_id": "example-client"}))
            prompt_id = answer["prompt_id"]
            while True:
                message = await ws.receive_str(timeout=10)
                event = json.loads(message)
                if event["type"] == "executing" and event["data"]["node"] is None \
                        and event["data"]["prompt_id"] == prompt_id:
                    break
        _, history = await api.get(f"/history/{prompt_id}")
        images = []
        for node_output in history[prompt_id]["outputs"].values():
            for image in node_output.get("images", []):
                query = f"filename={image['filename']}&subfolder={image['subfolder']}&type={image['type']}"
                status, data = await api.get(f"/view?{query}")
                assert status == 200
                images.append(Image.open(io.BytesIO(data)))
        assert len(images) == 1 and images[0].getpixel((0, 0))[:3] == (255, 0, 0)


async def test_output_files_are_never_overwritten(server, folders):
    prompt = graph({"1": ("SolidImage", {"color": 0x00FF00, "filename_prefix": "keep"})})
    async with connect(server) as api:
        names = []
        for seed in range(3):  # always_rerun is not set, so vary an input to make it run again
            prompt["1"]["inputs"]["size"] = seed + 1
            entry = await api.wait_done(await api.queue_prompt(prompt))
            names.append(entry["outputs"]["1"]["images"][0]["filename"])
        assert names == ["keep_00001_.png", "keep_00002_.png", "keep_00003_.png"]
        assert [Image.open(folders["output"] / n).size for n in names] == [(1, 1), (2, 2), (3, 3)]
