"""Running from the editor: the default workflow, edited through its widgets, queued, watched
(progress, the final image on SaveImage), its PNG dropped back in, and a validation error shown
on the node it belongs to."""

from __future__ import annotations

import json
import urllib.request

from tests.web.editor_page import EditorPage, same_graph

DEFAULT_TYPES = {3: "KSampler", 4: "CheckpointLoaderSimple", 5: "EmptyLatentImage", 6: "CLIPTextEncode",
                 7: "CLIPTextEncode", 8: "VAEDecode", 9: "SaveImage"}


def make_small(editor: EditorPage, steps: int = 4) -> None:
    """64×64 and few steps, set through the widgets, so a run takes seconds on a CPU."""
    editor.set_widget(5, "width", 64)
    editor.set_widget(5, "height", 64)
    editor.set_widget(3, "steps", steps)


def history_entry(server, prompt_id: str) -> dict:
    with urllib.request.urlopen(f"{server.url}/history/{prompt_id}") as response:
        return json.loads(response.read())[prompt_id]


def test_the_default_workflow_is_drawn_with_sockets_widgets_and_links(editor: EditorPage):
    ui = editor.workflow()
    assert {n["id"]: n["type"] for n in ui["nodes"]} == DEFAULT_TYPES
    assert len(ui["links"]) == 9 and ui["version"] == 0.4
    assert editor.page.locator(".canvas .node").count() == 7
    assert editor.page.locator(".link-layer path.link").count() == 9
    assert editor.node(6).locator(".node-title-text").inner_text() == "Positive prompt"
    assert editor.widget(6, "text").locator("textarea").input_value() == "a red circle on a blue background, center"
    assert editor.widget(3, "seed").locator("input").input_value() == "42"
    assert editor.widget(3, "seed").locator("select.seed-control").input_value() == "fixed"
    assert editor.widget(3, "sampler_name").locator("select").input_value() == "euler"
    steps = editor.widget(3, "steps").locator("input")
    assert (steps.get_attribute("min"), steps.get_attribute("step")) == ("1", "1")
    width = editor.widget(5, "width").locator("input")
    assert (width.get_attribute("min"), width.get_attribute("max"), width.get_attribute("step")) == ("16", "16384", "8")
    # the built-in demo model is the default; the other built-ins are offered too
    assert editor.widget(4, "ckpt_name").locator("select").input_value() == "demo-shapes.safetensors"
    assert "tiny-sd15-random.safetensors" in editor.widget(4, "ckpt_name").locator("option").all_inner_texts()
    # sockets are coloured by type: MODEL and LATENT differ
    colour = lambda loc: loc.evaluate("e => getComputedStyle(e).backgroundColor")  # noqa: E731
    assert colour(editor.socket(3, "in", "model")) != colour(editor.socket(3, "in", "latent_image"))


def test_number_widgets_honour_min_max_and_step(editor: EditorPage):
    editor.set_widget(5, "width", 99)           # snapped to the step of 8 from the minimum 16
    assert editor.widget_value(5, "width") == 96
    editor.set_widget(5, "width", 99999)        # clamped to the maximum
    assert editor.widget_value(5, "width") == 16384
    editor.set_widget(3, "cfg", 7.25)           # FLOAT step 0.1, round 0.01: the value keeps its precision
    assert editor.widget_value(3, "cfg") == 7.25
    editor.set_widget(3, "cfg", 7.256)          # and is rounded to it
    assert editor.widget_value(3, "cfg") == 7.26
    editor.set_widget(3, "denoise", -1)
    assert editor.widget_value(3, "denoise") == 0


def test_queue_shows_progress_and_the_image_on_save_image(editor: EditorPage, server, screenshots):
    editor.set_widget(6, "text", "a green square on a black background")
    editor.set_widget(3, "seed", 1234)
    editor.choose(3, "seed", "increment", control="select.seed-control")
    make_small(editor, steps=6)
    editor.record_events()
    editor.page.keyboard.press("Control+Enter")
    image = editor.wait_for_output_image(9)

    events = editor.events()
    progress = [e for e in events if e["type"] == "progress" and e["node"] == "3"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 6
    assert all(e["highlighted"] for e in progress), "the sampling node is highlighted while it runs"
    assert any(e["bar"] not in ("", "0%") for e in progress), "its progress bar moves"
    assert [e["node"] for e in events if e["type"] == "executed"] == ["9"]
    previews = [e for e in events if e["type"] == "preview"]
    assert all(e["node"] == "3" and e["shown"] for e in previews), "latent previews show on the sampler"
    assert editor.page.locator(".canvas img.preview-image").count() == 0, "the final image replaces previews"
    # the seed control ran after queueing; the run used the values typed into the widgets
    assert editor.widget(3, "seed").locator("input").input_value() == "1235"
    src = image.first.get_attribute("src")
    assert "/view?" in src and "type=output" in src
    prompt_id = editor.js("() => [...sdgraph.runner.mine].pop()")
    entry = history_entry(server, prompt_id)
    prompt = entry["prompt"][2]
    assert prompt["6"]["inputs"]["text"] == "a green square on a black background"
    assert prompt["3"]["inputs"]["seed"] == 1234 and prompt["5"]["inputs"]["width"] == 64
    assert entry["prompt"][3]["extra_pnginfo"]["workflow"]["version"] == 0.4
    assert editor.page.locator(".node.executing").count() == 0
    assert editor.page.locator("#queue-size").inner_text() == "Queue: 0"
    editor.page.click("#btn-history")
    editor.page.locator(".history-item img").first.wait_for()
    editor.page.click("#btn-fit")
    editor.screenshot(screenshots / "default-workflow-after-run.png")


def test_a_png_produced_earlier_drops_back_in_as_the_same_graph(editor: EditorPage, server):
    make_small(editor)
    editor.set_widget(7, "text", "ugly")
    editor.set_widget(3, "seed", 777)
    sent = editor.workflow()
    editor.queue()
    image = editor.wait_for_output_image(9)
    with urllib.request.urlopen(image.first.get_attribute("src")) as response:
        png = response.read()

    editor.js("() => { sdgraph.files.openShipped('solid_color.json'); }")
    editor.answer("replace")                  # the edited txt2img was never saved: the editor asks first
    editor.page.wait_for_function("() => sdgraph.graph.nodes.size === 3")
    editor.drop_file(editor.page.locator(".canvas"), "txt2img_00001_.png", png, "image/png")
    editor.page.wait_for_function("() => sdgraph.graph.nodes.size === 7")
    assert same_graph(editor.workflow(), sent)
    assert editor.widget(7, "text").locator("textarea").input_value() == "ugly"
    assert editor.widget(3, "seed").locator("input").input_value() == "777"


def test_a_validation_error_is_shown_on_the_node_and_input_it_concerns(editor: EditorPage, screenshots):
    editor.allow_http_error(400, "/prompt")
    editor.drag(editor.centre(editor.socket(3, "in", "positive")), editor.empty_point())   # disconnect
    assert "positive" not in editor.links_into(3)
    editor.queue()
    error = editor.node(3).locator(".node-error")
    error.first.wait_for()
    assert "“positive” is not connected" in error.first.inner_text()
    assert "has-errors" in editor.node(3).get_attribute("class")
    assert editor.page.locator(".canvas .node.has-errors").count() == 1
    assert editor.node(3).locator('.socket.in.has-error[data-name="positive"]').count() == 1
    assert any("cannot run" in text for text in editor.toasts())
    editor.screenshot(screenshots / "validation-error-on-node.png")

    # fixing it and queueing again clears the error
    editor.drag_between(editor.socket(6, "out", "CONDITIONING"), editor.socket(3, "in", "positive"))
    editor.set_widget(5, "width", 64)
    editor.set_widget(5, "height", 64)
    editor.set_widget(3, "steps", 2)
    editor.queue()
    editor.wait_for_output_image(9)
    assert editor.page.locator(".canvas .node.has-errors").count() == 0


def test_a_bad_widget_value_is_reported_in_words_on_its_widget(editor: EditorPage):
    editor.allow_http_error(400, "/prompt")
    # a checkpoint name the server does not have (as in a workflow from another machine)
    editor.js("""() => { const g = sdgraph.graph; g.setWidgetValue(g.nodes.get(4), 'ckpt_name', 'missing.safetensors');
                         g.changed('structure'); }""")
    editor.queue()
    error = editor.node(4).locator(".node-error")
    error.first.wait_for()
    assert "“missing.safetensors” is not available" in error.first.inner_text()
    assert "tiny-sd15-random.safetensors" in error.first.inner_text()
    assert "has-error" in editor.widget(4, "ckpt_name").get_attribute("class")
