"""Issue 18 in the editor: the ControlNet nodes show the widgets /object_info declares (names,
defaults, choices), LoadImage's upload button puts an image into the graph, and a txt2img graph
guided through Canny and ControlNetApplyAdvanced runs on the built-in tiny SD1.5 model with a tiny
ControlNet made from its UNet."""

from __future__ import annotations

import io
import json
import urllib.request
import uuid

import pytest
from PIL import Image, ImageDraw

from tests.web.editor_page import EditorPage

pytestmark = pytest.mark.browser

CONTROLNET = "tiny-sd15-control.safetensors"
NEW_NODES = ["ControlNetLoader", "ControlNetApplyAdvanced", "LoadImage", "Canny"]
LINKED_TYPES = {"IMAGE", "CONDITIONING", "CONTROL_NET", "VAE"}


@pytest.fixture(scope="module")
def tiny_controlnet_file(server):
    """A ControlNet of the built-in tiny SD1.5 model's UNet (random zero convolutions), in models/controlnet."""
    from safetensors.torch import save_file

    from nodes.models.builtin import BUILTIN_SEED
    from nodes.models.family import SD15
    from nodes.models.tiny import tiny_modules
    from tests.nodes.test_controlnet import tiny_controlnet

    folder = server.folders["models"] / "controlnet"
    folder.mkdir(parents=True, exist_ok=True)
    net = tiny_controlnet(tiny_modules(SD15, BUILTIN_SEED)["unet"], seed=1)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / CONTROLNET))
    return folder / CONTROLNET


def object_info(server) -> dict:
    with urllib.request.urlopen(f"{server.url}/object_info") as response:
        return json.loads(response.read())


def history_entry(server, prompt_id: str) -> dict:
    with urllib.request.urlopen(f"{server.url}/history/{prompt_id}") as response:
        return json.loads(response.read())[prompt_id]


def square_png() -> bytes:
    """A white square on black, 64×64: edges for Canny."""
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).rectangle([16, 16, 47, 47], fill="white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def add_node(editor: EditorPage, node_type: str) -> int:
    """"+ Node", search, Enter: the node goes to a free spot (keyboard.js), so none covers another."""
    editor.page.click("#btn-add")
    editor.page.locator(".palette-search").fill(node_type)
    editor.page.keyboard.press("Enter")
    node_id = editor.js("() => [...sdgraph.view.selection][0]")
    assert editor.workflow()["nodes"][-1]["type"] == node_type
    return node_id


def assert_widgets_as_declared(editor: EditorPage, node_id: int, declared: dict) -> None:
    """Every constant input is a widget showing its default (or first choice), with the declared choices."""
    inputs = {**declared["input"]["required"], **declared["input"].get("optional", {})}
    widgets = {name: spec for name, spec in inputs.items() if isinstance(spec[0], list) or spec[0] not in LINKED_TYPES}
    shown = editor.node(node_id).locator(".widget").evaluate_all("(rows) => rows.map((r) => r.dataset.widget)")
    assert shown == list(widgets), f"{declared['name']} shows the widgets it declares"
    sockets = editor.node(node_id).locator(".socket.in").evaluate_all("(rows) => rows.map((r) => r.dataset.name)")
    assert sockets == [name for name in inputs if name not in widgets]
    for name, spec in widgets.items():
        control = editor.widget(node_id, name).locator(".widget-input").first
        if isinstance(spec[0], list):
            options = control.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
            assert [o for o in options if o in spec[0]] == spec[0], f"{name} offers the declared choices"
            if spec[0]:
                assert control.input_value() == spec[0][0]
        else:
            assert float(control.input_value()) == spec[1]["default"], f"{name} shows its default"
            assert float(control.get_attribute("min")) == spec[1]["min"]
            assert float(control.get_attribute("max")) == spec[1]["max"]


def test_a_controlnet_graph_is_built_in_the_editor_loads_an_image_and_runs(editor: EditorPage, server,
                                                                           tiny_controlnet_file, screenshots):
    editor.reload()   # /object_info again, now listing the ControlNet file
    info = object_info(server)
    assert CONTROLNET in info["ControlNetLoader"]["input"]["required"]["control_net_name"][0]
    ids = dict(zip(NEW_NODES, (add_node(editor, t) for t in NEW_NODES), strict=True))
    editor.page.click("#btn-fit")
    for node_type, node_id in ids.items():
        assert_widgets_as_declared(editor, node_id, info[node_type])
    assert editor.widget(ids["ControlNetLoader"], "control_net_name").locator("select").input_value() == CONTROLNET

    upload = editor.widget(ids["LoadImage"], "image").locator("button.upload-button")
    assert upload.is_visible()
    name = f"hint-{uuid.uuid4().hex[:8]}.png"
    with editor.page.expect_file_chooser() as chooser:
        upload.click()
    chooser.value.set_files(files=[{"name": name, "mimeType": "image/png", "buffer": square_png()}])
    editor.page.wait_for_function("([id, name]) => sdgraph.graph.widgetValue(sdgraph.graph.nodes.get(id), 'image') "
                                  "=== name", arg=[ids["LoadImage"], name])
    assert editor.widget(ids["LoadImage"], "image").locator("select").input_value() == name
    editor.node(ids["LoadImage"]).locator(".node-images img").first.wait_for()

    cn = ids["ControlNetApplyAdvanced"]
    for source, target in [((ids["LoadImage"], "IMAGE"), (ids["Canny"], "image")),
                           ((ids["Canny"], "IMAGE"), (cn, "image")),
                           ((ids["ControlNetLoader"], "CONTROL_NET"), (cn, "control_net")),
                           ((6, "CONDITIONING"), (cn, "positive")), ((7, "CONDITIONING"), (cn, "negative")),
                           ((cn, "positive"), (3, "positive")), ((cn, "negative"), (3, "negative"))]:
        editor.drag_between(editor.socket(source[0], "out", source[1]), editor.socket(target[0], "in", target[1]))
    assert editor.links_into(cn) == {"image": ids["Canny"], "control_net": ids["ControlNetLoader"], "positive": 6,
                                     "negative": 7}
    assert editor.links_into(3)["positive"] == editor.links_into(3)["negative"] == cn

    editor.choose(4, "ckpt_name", "tiny-sd15-random.safetensors")
    editor.set_widget(5, "width", 64)
    editor.set_widget(5, "height", 64)
    editor.set_widget(3, "steps", 2)
    editor.set_widget(cn, "strength", 0.8)
    editor.page.keyboard.press("Control+Enter")
    editor.wait_for_output_image(9)
    assert editor.page.locator(".toast.error").count() == 0

    prompt_id = editor.js("() => [...sdgraph.runner.mine].pop()")
    entry = history_entry(server, prompt_id)
    assert entry["status"]["status_str"] == "success"
    prompt = entry["prompt"][2]
    assert prompt[str(ids["ControlNetLoader"])]["inputs"] == {"control_net_name": CONTROLNET}
    assert prompt[str(ids["LoadImage"])]["inputs"]["image"] == name
    assert prompt[str(cn)]["inputs"]["strength"] == 0.8
    assert prompt["3"]["inputs"]["positive"] == [str(cn), 0] and prompt["3"]["inputs"]["negative"] == [str(cn), 1]
    editor.page.click("#btn-fit")
    editor.screenshot(screenshots / "controlnet-graph-after-run.png")
