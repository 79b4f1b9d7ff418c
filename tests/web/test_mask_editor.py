"""The mask editor: a mask painted over a LoadImage image is saved as the alpha of a copy of it
through `/upload/mask` (ComfyUI's `original_ref`), the node then loads that copy, and an inpaint run
(workflows/inpaint.json fed from LoadImage, composited back with its mask) changes only what was painted."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.web.editor_page import EditorPage

ROOT = Path(__file__).resolve().parents[2]
SIZE = 64


def source_image() -> bytes:
    """A 64×64 picture with structure in every region (so a change anywhere shows)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    rgb = np.stack([x * 4, y * 4, ((x + y) * 2) % 256], axis=-1).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="PNG")
    return out.getvalue()


def inpaint_from_load_image(image_name: str) -> dict:
    """workflows/inpaint.json with a LoadImage (image and mask) in place of the padded empty image, on
    the tiny model in two steps, and the result composited over the original through the same mask."""
    prompt = json.loads((ROOT / "workflows" / "inpaint.json").read_text())
    del prompt["10"], prompt["12"]
    prompt["10"] = {"class_type": "LoadImage", "inputs": {"image": image_name}}
    prompt["11"]["inputs"].update(pixels=["10", 0], mask=["10", 1])
    prompt["3"]["inputs"]["steps"] = 2
    prompt["13"] = {"class_type": "ImageCompositeMasked", "inputs": {
        "destination": ["10", 0], "source": ["8", 0], "x": 0, "y": 0, "resize_source": False, "mask": ["10", 1]}}
    prompt["9"]["inputs"]["images"] = ["13", 0]
    return prompt


MASK_ALPHAS = ("c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
               ".filter((v, i) => i % 4 === 3))")


def set_range(editor: EditorPage, name: str, value: float) -> None:
    editor.page.locator(f'.mask-editor input[name="{name}"]').evaluate(
        "(input, value) => { input.value = String(value); input.dispatchEvent(new Event('input')); }", value)


def test_paint_a_mask_save_it_and_inpaint_only_there(editor: EditorPage, server):
    page = editor.page
    original = source_image()
    uploaded = editor.js("""async (bytes) => (await sdgraph.api.uploadImage(
        new File([new Uint8Array(bytes)], "mask-source.png", { type: "image/png" }))).name""", list(original))
    prompt = inpaint_from_load_image(uploaded)
    editor.js("""async (prompt) => { const { workflowFromJson } = await import("/js/formats.js");
        sdgraph.load(workflowFromJson(prompt, sdgraph.defs), "inpaint", { fit: true }); }""", prompt)
    assert editor.widget_value(10, "image") == uploaded

    # open the editor from the node's menu; paint a stroke across the middle, erase its right end
    editor.node(10).locator(".node-title").click(button="right")
    page.locator(".menu-item", has_text="Open in mask editor").click()
    stage = page.locator(".mask-editor .mask-layer")
    stage.wait_for()
    box = stage.bounding_box()
    at = lambda px, py: (box["x"] + box["width"] * px / SIZE, box["y"] + box["height"] * py / SIZE)  # noqa: E731
    # a feathered dab fades towards its rim; Clear removes everything painted
    set_range(editor, "brush", 20)
    set_range(editor, "feather", 1)
    page.mouse.click(*at(12, 50))
    alphas = stage.evaluate(MASK_ALPHAS)
    assert alphas[50 * SIZE + 12] > 200 and any(0 < a < 200 for a in alphas) and alphas[50 * SIZE + 25] == 0
    page.locator('.mask-editor button[data-action="clear"]').click()
    assert not any(stage.evaluate(MASK_ALPHAS))

    set_range(editor, "brush", 12)
    set_range(editor, "feather", 0)
    editor.drag(at(20, 32), at(44, 32))
    page.locator('.mask-editor button[data-action="erase"]').click()
    editor.drag(at(44, 26), at(44, 38))
    # invert twice is no change; clear, then paint again, shows clear works on what was painted
    page.locator('.mask-editor button[data-action="invert"]').click()
    painted_inverted = stage.evaluate("c => c.getContext('2d').getImageData(32, 32, 1, 1).data[3]")
    assert painted_inverted == 0
    page.locator('.mask-editor button[data-action="invert"]').click()
    page.locator('.mask-editor button[data-action="save"]').click()
    page.locator(".mask-editor").wait_for(state="detached")

    # the node now loads the masked copy, stored under input/clipspace
    value = editor.widget_value(10, "image")
    assert value.startswith("clipspace/") and value.endswith(".png")
    stored = Image.open(server.folders["input"] / value)
    assert stored.mode == "RGBA" and stored.size == (SIZE, SIZE)
    alpha = np.asarray(stored.getchannel("A"))
    assert alpha[32, 30] == 0 and alpha[32, 22] == 0          # painted: transparent
    assert alpha[36, 30] == 0 and alpha[41, 30] == 255        # the brush is 12 pixels wide
    assert alpha[32, 45] == 255                               # erased again
    assert alpha[5, 5] == 255 and alpha[60, 60] == 255        # never painted
    # the copy keeps the original's colours everywhere, and the original file is untouched
    source = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"))
    assert np.array_equal(np.asarray(stored.convert("RGB")), source)
    assert (server.folders["input"] / uploaded).read_bytes() == original

    # run: pixels outside the mask come back unchanged, the painted ones are inpainted
    editor.queue()
    image = editor.wait_for_output_image(9)
    src = image.first.get_attribute("src")
    filename = src.split("filename=")[1].split("&")[0]
    result = np.asarray(Image.open(server.folders["output"] / filename).convert("RGB")).astype(int)
    assert result.shape == (SIZE, SIZE, 3)
    unmasked = alpha == 255
    masked = alpha == 0
    assert unmasked.sum() > 3000 and masked.sum() > 150
    assert np.array_equal(result[unmasked], source.astype(int)[unmasked])
    assert np.abs(result[masked] - source.astype(int)[masked]).mean() > 10
