"""Hostile files sent to the server: each is refused or defused quickly, and the server stays responsive.

Every file is built here, small: a PNG whose A1111 text would make a backtracking regex run for
minutes, an animated GIF whose frames would take gigabytes once decoded, a PNG whose compressed
text is over the limit, and a PNG that is also an HTML page.
"""

from __future__ import annotations

import asyncio
import struct
import time
import zlib

import aiohttp
import pytest

from tests.server.helpers import connect
from tests.server.test_files import form, raw_form
from tests.server.toy_server_nodes import png_bytes

HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"


def png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", zlib.crc32(chunk_type + data))


def png_with(*chunks: bytes) -> bytes:
    """A valid 1x1 grey PNG with `chunks` between its header and its pixels."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    return (b"\x89PNG\r\n\x1a\n" + header + b"".join(chunks) + png_chunk(b"IDAT", zlib.compress(b"\0\x80"))
            + png_chunk(b"IEND", b""))


def gif_frame_bomb(width: int, height: int, frames: int) -> bytes:
    """A GIF of `frames` one-pixel frames on a `width` x `height` screen: a few bytes a frame, but a
    reader that composes each frame onto the screen holds width x height pixels for every one."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"  # one pixel, LZW-coded
    return screen + frame * frames + b"\x3b"


async def test_converting_a_png_with_a_long_a1111_line_answers_at_once_and_blocks_nothing(server):
    # 60,000 letters without a colon: 35 s of regex backtracking, holding the GIL, before the fix.
    hostile = png_with(png_chunk(b"tEXt", b"parameters\0a cat\n" + b"a" * 60_000))
    async with connect(server) as api:
        started = time.perf_counter()
        (status, body), (queue_status, _) = await asyncio.gather(
            api.post("/workflow/convert", data=hostile), api.get("/queue"))
        assert time.perf_counter() - started < 1.5
        assert status == 200 and body["3"]["inputs"]["text"].startswith("a cat\naaaa")
        assert queue_status == 200


async def test_converting_a_png_with_a_huge_compressed_a1111_text_is_a_400(server):
    text = b"a cat\n" + b"a" * (4 * 2**20)
    hostile = png_with(png_chunk(b"zTXt", b"parameters\0\0" + zlib.compress(text, 9)))
    assert len(hostile) < 16 * 1024
    async with connect(server) as api:
        started = time.perf_counter()
        status, body = await api.post("/workflow/convert", data=hostile)
        assert time.perf_counter() - started < 1.5
        assert status == 400 and "at most" in body["error"]["details"]


async def test_an_animated_gif_frame_bomb_is_refused_at_upload(make_server, folders):
    server = make_server(max_image_pixels=64 * 2**20)  # the default: one 8000x8000 frame passes
    bomb = gif_frame_bomb(8000, 8000, 1000)  # 15 KB; 64 billion pixels once every frame is decoded
    async with connect(server) as api:
        status, body = await api.post("/upload/image", data=form(bomb, filename="bomb.gif"))
        assert status == 413 and body["error"]["type"] == "image_too_large"
        assert "1000 frames" in body["error"]["message"]
        status, body = await api.post("/upload/image", data=form(gif_frame_bomb(64, 64, 3), filename="ok.gif"))
        assert status == 200, body
    assert [p.name for p in folders["input"].iterdir()] == ["ok.gif"]


async def test_an_image_with_a_text_chunk_over_pillows_limit_is_a_400_not_a_500(server):
    bomb = png_with(png_chunk(b"zTXt", b"parameters\0\0" + zlib.compress(b"a" * (2 * 2**20), 9)))
    async with connect(server) as api:
        status, body = await api.post("/upload/image", data=form(bomb))
        assert status == 400 and body["error"]["type"] == "invalid_image"


@pytest.mark.parametrize("filename", ["a\x00b.png", "x" * 252 + ".png", "é" * 126 + ".png", "a\nb.png"])
async def test_an_upload_name_with_a_nul_a_newline_or_over_255_bytes_is_a_400(server, filename):
    async with connect(server) as api:
        data, headers = raw_form(png_bytes(1), filename)
        status, body = await api.post("/upload/image", data=data, headers=headers)
        assert status == 400 and body["error"]["type"] in ("invalid_filename", "invalid_form"), body


async def test_a_long_name_whose_renamed_form_is_too_long_is_a_400(server, folders):
    name = "x" * 247 + ".png"  # 251 bytes; "name (1).png" would be 255: still fine, then 256 at (10)
    async with connect(server) as api:
        for index in range(11):
            status, body = await api.post("/upload/image", data=form(png_bytes(index), filename=name))
        assert status == 400 and body["error"]["type"] == "invalid_filename"


async def test_a_png_html_polyglot_named_html_is_served_as_a_png_only(server):
    polyglot = png_with(png_chunk(b"tEXt", b"Comment\0" + HTML))
    async with connect(server) as api:
        status, body = await api.post("/upload/image", data=form(polyglot, filename="evil.html"))
        assert status == 200 and body["name"] == "evil.html"
        async with api.session.get(server.url("/view?filename=evil.html&type=input")) as response:
            assert response.status == 200 and await response.read() == polyglot
            assert response.headers["Content-Type"] == "image/png"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Content-Disposition"].startswith("inline;")
            assert "sandbox" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("name", ["evil.html", "evil.svg", "evil.js", "page.htm", "noext"])
async def test_a_file_that_is_no_image_is_only_ever_an_attachment(server, folders, name):
    (folders["output"] / name).write_bytes(HTML)
    async with connect(server) as api:
        async with api.session.get(server.url(f"/view?filename={name}")) as response:
            assert response.status == 200 and await response.read() == HTML
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert response.headers["Content-Disposition"].startswith("attachment;")
            assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_name_with_quotes_and_non_ascii_letters_is_quoted_in_the_disposition(server, folders):
    (folders["output"] / 'châ"teau.png').write_bytes(png_bytes(2))
    async with connect(server) as api:
        async with api.session.get(server.url("/view"), params={"filename": 'châ"teau.png'}) as response:
            assert response.status == 200
            assert response.headers["Content-Disposition"] == (
                "inline; filename=\"ch__teau.png\"; filename*=UTF-8''ch%C3%A2%22teau.png")


async def test_every_answer_says_nosniff_and_the_editor_pages_carry_a_csp(server):
    async with aiohttp.ClientSession() as session:
        for path, status in (("/queue", 200), ("/", 200), ("/no/such/thing", 404), ("/view", 400),
                             ("/object_info", 200)):
            async with session.get(server.url(path)) as response:
                assert response.status == status, path
                assert response.headers.get("X-Content-Type-Options") == "nosniff", path
        async with session.get(server.url("/")) as response:
            csp = response.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
            assert f"ws://127.0.0.1:{server.port}" in csp


def empty_image(width: int, height: int, batch_size: int) -> dict:
    return {"1": {"class_type": "EmptyImage",
                  "inputs": {"width": width, "height": height, "batch_size": batch_size, "color": 0}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}


async def test_a_request_may_lower_the_pixel_cap_never_raise_it_and_empty_image_is_capped(make_server, config):
    from engine.registry import NodeRegistry
    from nodes.image_ops import EmptyImage
    from nodes.image_save import PreviewImage

    config.settings = {**config.settings, "max_latent_pixels": 64 * 64 * 2}
    server = make_server(NodeRegistry([EmptyImage, PreviewImage]))
    raised = {"settings": {"max_latent_pixels": 2**40, "max_anything": 2**40}}
    async with connect(server) as api:
        status, body = await api.post("/prompt", {"prompt": empty_image(16384, 16384, 4096)})
        assert status == 400 and "image too large" in body["node_errors"]["1"]["errors"][0]["message"]
        status, body = await api.post("/prompt", {"prompt": empty_image(128, 128, 1), "extra_data": raised})
        assert status == 400 and "limit of 8,192" in body["node_errors"]["1"]["errors"][0]["message"]
        status, body = await api.post("/prompt", {"prompt": empty_image(64, 64, 2),
                                                  "extra_data": {"settings": {"max_latent_pixels": 64 * 64}}})
        assert status == 400 and "limit of 4,096" in body["node_errors"]["1"]["errors"][0]["message"]
        done = await api.wait_done(await api.queue_prompt(empty_image(64, 64, 2), extra_data=raised), timeout=60)
        assert done["status"]["status_str"] == "success", done


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_a_float_input_of_nan_or_infinity_is_a_400_on_that_input(server, literal):
    body = ('{"prompt": {"1": {"class_type": "Number", "inputs": {"value": 1}},'
            ' "2": {"class_type": "Scale", "inputs": {"value": ["1", 0], "factor": 2, "offset": %s}},'
            ' "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}}' % literal)
    async with connect(server) as api:
        status, answer = await api.post("/prompt", data=body.encode(), headers={"Content-Type": "application/json"})
        assert status == 400, answer
        [error] = answer["node_errors"]["2"]["errors"]
        assert error["extra_info"]["input_name"] == "offset" and "not a finite number" in error["details"]
