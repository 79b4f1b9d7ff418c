"""PNG workflow metadata: written as ComfyUI's SaveImage writes it, read back without decoding pixels."""

from __future__ import annotations

import io
import json
import struct
import sys
import time
import types
import zlib

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine import pngmeta
from engine.pngmeta import (
    PngMetadata,
    PngMetadataError,
    png_text_chunks,
    pnginfo,
    read_png_metadata,
    read_png_text,
    workflow_from_png,
)
from engine.workflow import LinkRef, Workflow

PROMPT = {
    "3": {"class_type": "KSampler", "_meta": {"title": "KSampler"},
          "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
                     "seed": 8566257, "steps": 20, "cfg": 8.0, "sampler_name": "euler", "scheduler": "normal",
                     "denoise": 1.0}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a château in the ☀, \"quoted\"", "clip": ["4", 1]}},
}
UI_WORKFLOW = {
    "last_node_id": 4, "last_link_id": 1, "version": 0.4, "groups": [], "config": {},
    "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}},
    "nodes": [{"id": 4, "type": "CheckpointLoaderSimple", "pos": [0, 0], "size": [300, 100], "flags": {},
               "order": 0, "mode": 0, "inputs": [], "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]}],
               "properties": {}, "widgets_values": ["v1-5-pruned-emaonly.safetensors"]}],
    "links": [[1, 4, 0, 3, 0, "MODEL"]],
}
A1111_TEXT = ("a cat\nNegative prompt: blurry\n"
              "Steps: 12, Sampler: Euler a, CFG scale: 6.5, Seed: 42, Size: 512x768, Model: dreamshaper_8")


# --- helpers: PNG files built with Pillow, or chunk by chunk for damaged ones ---------------------

def pillow_png(info: PngInfo | None = None, size=(4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def chunk(chunk_type: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", zlib.crc32(chunk_type + data))


def ihdr(width: int = 1, height: int = 1) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))


def raw_png(*middle: bytes, width: int = 1, height: int = 1) -> bytes:
    idat = chunk(b"IDAT", zlib.compress(b"\0\0"))
    return pngmeta.PNG_SIGNATURE + ihdr(width, height) + b"".join(middle) + idat + chunk(b"IEND", b"")


def text_chunk(key: str, value: str) -> bytes:
    return chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))


# --- writing ---------------------------------------------------------------------------------------

def test_chunks_are_the_prompt_then_each_extra_pnginfo_key_as_json():
    chunks = png_text_chunks(PROMPT, {"workflow": UI_WORKFLOW, "note": "hello"})

    assert list(chunks) == ["prompt", "workflow", "note"]
    assert chunks["prompt"] == json.dumps(PROMPT)
    assert chunks["workflow"] == json.dumps(UI_WORKFLOW)
    assert chunks["note"] == '"hello"'  # every extra value is JSON, strings included


def test_no_prompt_and_no_extra_pnginfo_means_no_chunks():
    assert png_text_chunks(None, None) == {}
    assert png_text_chunks(None, {"workflow": UI_WORKFLOW}) == {"workflow": json.dumps(UI_WORKFLOW)}


def test_saved_chunks_are_plain_tEXt_like_comfyui_writes_them():
    data = pillow_png(pnginfo(png_text_chunks(PROMPT, {"workflow": UI_WORKFLOW})))

    # json.dumps escapes non-ASCII, so every chunk fits tEXt, as in ComfyUI's files.
    assert b"tEXtprompt\0" + json.dumps(PROMPT).encode("ascii") in data
    assert b"tEXtworkflow\0" + json.dumps(UI_WORKFLOW).encode("ascii") in data


# --- reading ---------------------------------------------------------------------------------------

def test_round_trip_gives_back_exactly_the_same_prompt_and_workflow(tmp_path):
    path = tmp_path / "out.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=pnginfo(png_text_chunks(PROMPT, {"workflow": UI_WORKFLOW})))

    meta = read_png_metadata(path)

    assert meta == PngMetadata(prompt=PROMPT, workflow=UI_WORKFLOW)
    assert read_png_metadata(str(path)) == meta
    assert read_png_metadata(path.read_bytes()) == meta
    with open(path, "rb") as stream:
        assert read_png_metadata(stream) == meta


def test_reads_a_png_written_the_way_comfyui_writes_it():
    info = PngInfo()  # what SaveImage does, spelled out with Pillow alone
    info.add_text("prompt", json.dumps(PROMPT))
    for key, value in {"workflow": UI_WORKFLOW}.items():
        info.add_text(key, json.dumps(value))

    meta = read_png_metadata(pillow_png(info))

    assert meta.prompt == PROMPT
    assert meta.workflow == UI_WORKFLOW
    assert meta.parameters is None and meta.other == {} and meta.problems == []


def test_reads_itxt_and_ztxt_chunks_compressed_or_not():
    info = PngInfo()
    info.add_itxt("prompt", json.dumps(PROMPT, ensure_ascii=False), zip=False)
    info.add_itxt("workflow", json.dumps(UI_WORKFLOW), zip=True)
    info.add_text("parameters", A1111_TEXT, zip=True)  # zTXt
    info.add_itxt("Comment", "Grüße ☀", lang="de", tkey="Kommentar")
    data = pillow_png(info)
    assert b"zTXtparameters" in data and b"iTXtprompt" in data

    meta = read_png_metadata(data)

    assert meta.prompt == PROMPT
    assert meta.workflow == UI_WORKFLOW
    assert meta.parameters == A1111_TEXT
    assert meta.other == {"Comment": "Grüße ☀"}


def test_text_after_the_image_data_is_read_too():
    data = raw_png(width=1, height=1)
    iend = chunk(b"IEND", b"")
    data = data[: -len(iend)] + text_chunk("prompt", json.dumps(PROMPT)) + iend

    assert read_png_metadata(data).prompt == PROMPT


def test_a_png_without_metadata_has_empty_metadata():
    assert read_png_metadata(pillow_png()) == PngMetadata()
    assert read_png_text(pillow_png()) == {}


def test_invalid_json_leaves_that_field_empty_and_says_why():
    data = raw_png(text_chunk("prompt", '{"3": {"class_type": '), text_chunk("workflow", json.dumps(UI_WORKFLOW)))

    meta = read_png_metadata(data)

    assert meta.prompt is None
    assert meta.workflow == UI_WORKFLOW
    assert len(meta.problems) == 1 and "'prompt' chunk is not valid JSON" in meta.problems[0]


def test_json_that_is_not_an_object_is_a_problem_too():
    meta = read_png_metadata(raw_png(text_chunk("workflow", "[1, 2]")))

    assert meta.workflow is None
    assert meta.problems == ["the 'workflow' chunk is JSON but not an object (got list)"]


def test_an_unreadable_text_chunk_is_skipped_with_a_problem():
    broken = chunk(b"zTXt", b"prompt\0\0" + b"not zlib data")

    meta = read_png_metadata(raw_png(broken, text_chunk("parameters", A1111_TEXT)))

    assert meta.prompt is None and meta.parameters == A1111_TEXT
    assert len(meta.problems) == 1 and "corrupt compressed text" in meta.problems[0]


# --- damaged and hostile files ---------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    (b"", "not a PNG file"),
    (b"GIF89a" + b"\0" * 100, "not a PNG file"),
    (pngmeta.PNG_SIGNATURE + text_chunk("prompt", "{}"), "the first chunk is tEXt, not IHDR"),
    (pngmeta.PNG_SIGNATURE + ihdr() + b"\0\0\0\x05\x00\x01\x02\x03abcde", "invalid chunk type"),
    (pngmeta.PNG_SIGNATURE + ihdr() + b"\xff\xff\xff\xffIDAT", "claims 4294967295 bytes"),
])
def test_a_corrupted_file_is_a_clear_error(data, message):
    with pytest.raises(PngMetadataError, match=message):
        read_png_metadata(data)


def test_a_text_chunk_with_a_bad_checksum_is_a_clear_error():
    data = bytearray(pillow_png(pnginfo(png_text_chunks(PROMPT, None))))
    data[data.index(b"KSampler")] ^= 0x20

    with pytest.raises(PngMetadataError, match="checksum mismatch in a tEXt chunk"):
        read_png_metadata(bytes(data))


@pytest.mark.parametrize("cut", [
    lambda data: data[: data.index(b"IDAT") + 10],  # inside the image data
    lambda data: data[:-12],              # IEND missing
])
def test_a_truncated_file_is_a_clear_error(cut):
    data = pillow_png(pnginfo(png_text_chunks(PROMPT, {"workflow": UI_WORKFLOW})), size=(64, 64))

    with pytest.raises(PngMetadataError, match="truncated PNG"):
        read_png_metadata(cut(data))


def test_a_file_cut_inside_a_text_chunk_is_a_clear_error():
    data = raw_png(text_chunk("prompt", json.dumps(PROMPT)))

    with pytest.raises(PngMetadataError, match="truncated PNG: the file ends inside a tEXt chunk"):
        read_png_metadata(data[:60])


def test_a_huge_image_is_not_decoded():
    # 100k x 100k pixels would need 30 GB; only the chunk headers are read.
    data = raw_png(text_chunk("prompt", json.dumps(PROMPT)), width=100_000, height=100_000)

    assert read_png_metadata(data).prompt == PROMPT


def test_a_compression_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(pngmeta, "MAX_TEXT_TOTAL", 1024 * 1024)
    bomb = chunk(b"zTXt", b"prompt\0\0" + zlib.compress(b" " * (8 * 1024 * 1024), 9))

    with pytest.raises(PngMetadataError, match="decompresses to more than"):
        read_png_metadata(raw_png(bomb))


def test_an_oversized_text_chunk_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr(pngmeta, "MAX_TEXT_CHUNK", 1000)

    with pytest.raises(PngMetadataError, match="too large"):
        read_png_metadata(raw_png(text_chunk("prompt", "x" * 2000)))


def test_the_default_limits_refuse_a_small_file_of_compressed_text():
    # 33 MiB of text compressed into 33 KB: refused when the decompressed size passes the total limit.
    bomb = chunk(b"zTXt", b"parameters\0\0" + zlib.compress(b"a" * (33 * 1024 * 1024), 9))

    assert len(bomb) < 64 * 1024
    with pytest.raises(PngMetadataError, match="decompresses to more than"):
        read_png_metadata(raw_png(bomb))


def test_a_long_a1111_text_in_a_ztxt_chunk_is_refused_at_once():
    # 8 MiB of letters without a colon: A1111's settings regex would take hours over it.
    started = time.perf_counter()
    hostile = chunk(b"zTXt", b"parameters\0\0" + zlib.compress(b"a" * (8 * 1024 * 1024), 9))

    with pytest.raises(ValueError, match="parameters"):
        workflow_from_png(raw_png(hostile), registry=None)
    assert time.perf_counter() - started < 1.5


def test_a_long_line_without_a_colon_still_gives_a_graph_at_once():
    started = time.perf_counter()
    workflow = workflow_from_png(raw_png(text_chunk("parameters", "a cat\n" + "a" * 60_000)), registry=None)

    assert workflow.nodes["3"].inputs["text"].startswith("a cat\naaa")
    assert time.perf_counter() - started < 0.5


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PngMetadataError, match="cannot open"):
        read_png_metadata(tmp_path / "nope.png")


# --- the workflow a PNG carries --------------------------------------------------------------------

@pytest.fixture
def fake_ui_format(monkeypatch):
    """engine.ui_format stands in for the real converter: it records its calls and returns a fixed graph."""
    calls = []
    module = types.ModuleType("engine.ui_format")

    def ui_to_api(ui, registry):
        calls.append((ui, registry))
        return {"1": {"class_type": "FromUI", "inputs": {}}}

    module.ui_to_api = ui_to_api
    monkeypatch.setitem(sys.modules, "engine.ui_format", module)
    return calls


def test_the_prompt_chunk_is_preferred(fake_ui_format):
    data = pillow_png(pnginfo(png_text_chunks(PROMPT, {"workflow": UI_WORKFLOW, "parameters": A1111_TEXT})))

    workflow = workflow_from_png(data, registry=None)

    assert workflow.to_api() == Workflow.from_api(PROMPT).to_api()
    assert workflow.nodes["3"].inputs["model"] == LinkRef("4", 0)
    assert fake_ui_format == []


def test_without_a_prompt_chunk_the_ui_workflow_is_converted_with_the_registry(fake_ui_format):
    registry = object()
    data = pillow_png(pnginfo(png_text_chunks(None, {"workflow": UI_WORKFLOW})))

    workflow = workflow_from_png(data, registry)

    assert workflow.to_api() == {"1": {"class_type": "FromUI", "inputs": {}}}
    assert fake_ui_format == [(UI_WORKFLOW, registry)]


def test_an_invalid_prompt_chunk_falls_back_to_the_ui_workflow(fake_ui_format):
    data = raw_png(text_chunk("prompt", "{broken"), text_chunk("workflow", json.dumps(UI_WORKFLOW)))

    assert workflow_from_png(data, None).nodes["1"].class_type == "FromUI"


def test_an_a1111_png_becomes_a_text_to_image_graph():
    info = PngInfo()
    info.add_text("parameters", A1111_TEXT)

    workflow = workflow_from_png(pillow_png(info), registry=None)

    assert workflow.nodes["1"].inputs == {"ckpt_name": "dreamshaper_8.safetensors"}
    assert workflow.nodes["3"].inputs["text"] == "a cat"
    assert workflow.nodes["6"].inputs["sampler_name"] == "euler_ancestral"


def test_a_png_without_a_workflow_says_so():
    with pytest.raises(PngMetadataError, match="^no workflow in this PNG$"):
        workflow_from_png(pillow_png(), registry=None)


def test_no_workflow_error_mentions_the_chunks_that_were_unusable():
    data = raw_png(text_chunk("prompt", "not json"))

    with pytest.raises(PngMetadataError, match=r"no workflow in this PNG \(the 'prompt' chunk is not valid JSON"):
        workflow_from_png(data, registry=None)


def test_a_prompt_chunk_that_is_not_an_api_graph_is_reported():
    data = raw_png(text_chunk("prompt", json.dumps({"3": {"inputs": {}}})))

    with pytest.raises(PngMetadataError, match="not an API-format workflow: node 3: missing or invalid 'class_type'"):
        workflow_from_png(data, registry=None)
