"""Files: shipped workflows from the menu, ComfyUI's UI format dropped in (newer files' widget
inputs, reroutes, notes), saving our UI format and exporting the API format, uploading an image
for LoadImage from the node, and the run controls (queue length, interrupt)."""

from __future__ import annotations

import io
import json

from PIL import Image

from tests.web.editor_page import EditorPage
from tests.web.test_run import make_small


def comfy_style(editor: EditorPage) -> dict:
    """The default workflow as a newer ComfyUI front end saves it: every widget also listed as an
    input (first, so link slots shift), a Reroute before Save Image and a Note."""
    ui = editor.workflow()
    widgets = editor.js("() => Object.fromEntries([...sdgraph.defs.byType].map(([t, d]) => "
                        "[t, d.widgets.map((w) => [w.name, w.type])]))")
    for node in ui["nodes"]:
        extra = [{"name": name, "type": kind, "widget": {"name": name}, "link": None}
                 for name, kind in widgets[node["type"]]]
        node["inputs"] = extra + node["inputs"]
        for link in ui["links"]:
            if link[3] == node["id"]:
                link[4] += len(extra)
    into_save = next(link for link in ui["links"] if link[3] == 9)
    into_save[1], into_save[2] = 20, 0
    ui["links"].append([40, 8, 0, 20, 0, "IMAGE"])
    vae_decode = next(n for n in ui["nodes"] if n["id"] == 8)
    vae_decode["outputs"][0]["links"] = [40]
    ui["nodes"] += [
        {"id": 20, "type": "Reroute", "pos": [1200, 500], "size": [75, 26], "flags": {}, "order": 7, "mode": 0,
         "inputs": [{"name": "", "type": "*", "link": 40}],
         "outputs": [{"name": "", "type": "IMAGE", "links": [into_save[0]], "slot_index": 0}],
         "properties": {"showOutputText": False, "horizontal": False}},
        {"id": 21, "type": "Note", "pos": [60, 500], "size": [300, 120], "flags": {}, "order": 8, "mode": 0,
         "inputs": [], "outputs": [], "properties": {"text": ""}, "widgets_values": ["made in ComfyUI"],
         "color": "#432", "bgcolor": "#653"},
    ]
    ui["last_node_id"], ui["last_link_id"] = 21, 40
    return ui


def open_menu_item(editor: EditorPage, *labels: str) -> None:
    """Click through the Workflow menu by exact labels ("Save" is not "Save as PNG")."""
    def item(label: str):
        return editor.page.locator(f"xpath=//*[contains(@class, 'menu-item')][span[1][normalize-space()='{label}']]")

    editor.page.click("#btn-workflow")
    for label in labels[:-1]:
        item(label).first.hover()
    item(labels[-1]).last.click()


def test_open_a_shipped_workflow_from_the_menu(editor: EditorPage):
    open_menu_item(editor, "Open shipped workflow", "solid_color.json")
    editor.page.wait_for_function("() => sdgraph.graph.nodes.size === 3")
    assert {n["type"] for n in editor.workflow()["nodes"]} == {"EmptyImage", "ImageInvert", "SaveImage"}
    assert editor.page.locator("#workflow-name").inner_text() == "solid_color"
    assert editor.node(1).locator(".node-title-text").inner_text() == "Canvas"


def test_a_comfyui_ui_file_dropped_in_opens_and_runs(editor: EditorPage):
    ui = comfy_style(editor)
    editor.js("() => sdgraph.load({nodes: [], links: []}, 'empty')")
    editor.drop_file(editor.page.locator(".canvas"), "comfy.json", json.dumps(ui).encode(), "application/json")
    editor.page.wait_for_function("() => sdgraph.graph.nodes.size === 9")
    assert editor.page.locator("#workflow-name").inner_text() == "comfy"
    # widgets listed as inputs are widgets again; the links found their sockets
    assert editor.socket(3, "in", "seed").count() == 0 and editor.widget(3, "seed").count() == 1
    assert editor.links_into(3) == {"model": 4, "positive": 6, "negative": 7, "latent_image": 5}
    assert editor.links_into(9) == {"images": 20} and editor.links_into(20) == {"": 8}
    assert editor.widget(21, "text").locator("textarea").input_value() == "made in ComfyUI"
    make_small(editor)
    editor.queue()
    editor.wait_for_output_image(9)


def test_save_our_ui_format_and_export_the_api_format(editor: EditorPage, server):
    editor.set_widget(6, "text", "saved prompt")
    with editor.page.expect_download() as saved:
        open_menu_item(editor, "Save")
    assert saved.value.suggested_filename == "txt2img.json"
    ui = json.loads(open(saved.value.path()).read())
    assert ui["version"] == 0.4 and len(ui["nodes"]) == 7 and len(ui["links"]) == 9
    assert all(len(link) == 6 for link in ui["links"])
    ksampler = next(n for n in ui["nodes"] if n["id"] == 3)
    assert ksampler["widgets_values"] == [42, "fixed", 20, 7, "euler", "normal", 1]
    assert {"ds"} <= set(ui["extra"]) and ksampler["properties"]["Node name for S&R"] == "KSampler"
    # the size it is drawn at, in world units and without the title bar, as ComfyUI saves it
    assert ksampler["size"] == editor.node(3).evaluate("e => [e.offsetWidth, e.offsetHeight - 30]")

    with editor.page.expect_download() as exported:
        open_menu_item(editor, "Export API format")
    assert exported.value.suggested_filename == "txt2img_api.json"
    api = json.loads(open(exported.value.path()).read())
    assert api["6"]["inputs"]["text"] == "saved prompt" and api["3"]["inputs"]["positive"] == ["6", 0]
    assert api["3"]["class_type"] == "KSampler" and api["3"]["inputs"]["seed"] == 42


def test_upload_an_image_for_load_image_from_the_node(editor: EditorPage):
    x, y = editor.empty_point()
    editor.page.mouse.dblclick(x, y - 250)
    editor.page.locator(".palette input").fill("load image")
    editor.page.locator(".palette-item", has_text="Load Image").first.click()
    node = max(editor.node_ids())
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 30, 30)).save(buffer, "PNG")
    with editor.page.expect_file_chooser() as chooser:
        editor.widget(node, "image").locator("button.upload-button").click()
    chooser.value.set_files({"name": "red.png", "mimeType": "image/png", "buffer": buffer.getvalue()})
    editor.page.wait_for_function(
        "(id) => sdgraph.graph.widgetValue(sdgraph.graph.nodes.get(id), 'image') === 'red.png'", arg=node)
    preview = editor.node(node).locator(".node-images img")
    preview.wait_for()
    assert "type=input" in preview.get_attribute("src")
    assert editor.widget(node, "image").locator("select").input_value() == "red.png"
    # an image dropped on the node is uploaded too (a different file of the same name is renamed)
    other = io.BytesIO()
    Image.new("RGB", (24, 16), (30, 200, 30)).save(other, "PNG")
    editor.drop_file(editor.node(node), "red.png", other.getvalue(), "image/png")
    editor.page.wait_for_function(
        "(id) => sdgraph.graph.widgetValue(sdgraph.graph.nodes.get(id), 'image') === 'red (1).png'", arg=node)


def test_queue_length_and_interrupt(editor: EditorPage):
    make_small(editor, steps=2000)
    editor.record_events()
    editor.queue()
    editor.page.wait_for_function("() => window.seen.some((e) => e.type === 'progress')", timeout=60_000)
    assert editor.page.locator("#queue-size").inner_text() == "Queue: 1"
    assert "executing" in editor.node(3).get_attribute("class")
    editor.page.click("#btn-interrupt")
    editor.page.locator(".toast", has_text="Interrupted").wait_for(timeout=30_000)
    editor.page.wait_for_function("() => document.querySelector('#queue-size').textContent === 'Queue: 0'")
    assert editor.page.locator(".canvas .node.executing").count() == 0


def png_with_text(chunks: dict[str, str]) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def test_pngs_with_only_an_api_prompt_or_automatic1111_parameters_open(editor: EditorPage):
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 255}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    editor.drop_file(editor.page.locator(".canvas"), "api.png", png_with_text({"prompt": json.dumps(prompt)}),
                     "image/png")
    editor.page.wait_for_function("() => sdgraph.graph.nodes.size === 2")
    assert editor.links_into(2) == {"images": 1} and editor.widget_value(1, "color") == 255

    parameters = ("a lighthouse at dusk\nNegative prompt: fog\n"
                  "Steps: 5, Sampler: Euler a, CFG scale: 6, Seed: 99, Size: 64x64, Model: tiny")
    editor.drop_file(editor.page.locator(".canvas"), "a1111.png", png_with_text({"parameters": parameters}),
                     "image/png")
    editor.page.wait_for_function("() => [...sdgraph.graph.nodes.values()].some((n) => n.type === 'KSampler')")
    ksampler = next(n for n in editor.workflow()["nodes"] if n["type"] == "KSampler")
    assert ksampler["widgets_values"][:5] == [99, "fixed", 5, 6, "euler_ancestral"]
    texts = {n["widgets_values"][0] for n in editor.workflow()["nodes"] if n["type"] == "CLIPTextEncode"}
    assert texts == {"a lighthouse at dusk", "fog"}
