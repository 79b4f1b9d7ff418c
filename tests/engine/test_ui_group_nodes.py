"""ComfyUI's legacy group nodes (`workflow>NAME`, `workflow/NAME`) expand as the front end expands them."""

import copy

import pytest

from engine.registry import NodeRegistry
from engine.ui_format import UIFormatError, ui_to_api
from engine.ui_subgraph import MAX_FLAT_NODES
from engine.workflow import LinkRef
from tests.engine.toy_nodes import TOY_NODES, comfy_toy_nodes


@pytest.fixture(scope="module")
def registry():
    return NodeRegistry([*comfy_toy_nodes(), *TOY_NODES])


def inp(name, type_, link=None, widget=False):
    entry = {"name": name, "type": type_, "link": link}
    if widget:
        entry["widget"] = {"name": name}
    return entry


def out(name, type_, links=None):
    return {"name": name, "type": type_, "links": links}


# A KSampler and a VAEDecode grouped as the front end stores them: inner nodes by position,
# links [from index | null, slot, to index, slot, original from id, type].
SAMPLE_AND_DECODE = {
    "nodes": [
        {"type": "KSampler", "index": 0, "mode": 0,
         "inputs": [inp("model", "MODEL"), inp("positive", "CONDITIONING"), inp("negative", "CONDITIONING"),
                    inp("latent_image", "LATENT")],
         "outputs": [out("LATENT", "LATENT", [])], "widgets_values": [1, "randomize", 20, 8.0, "euler", "normal", 1.0]},
        {"type": "VAEDecode", "index": 1, "mode": 0,
         "inputs": [inp("samples", "LATENT"), inp("vae", "VAE")], "outputs": [out("IMAGE", "IMAGE", [])]},
    ],
    "links": [[None, 0, 0, 0, 4, "MODEL"], [None, 0, 0, 1, 6, "CONDITIONING"], [None, 0, 0, 2, 7, "CONDITIONING"],
              [None, 0, 0, 3, 5, "LATENT"], [0, 0, 1, 0, 3, "LATENT"], [None, 2, 1, 1, 4, "VAE"]],
    "external": [],
}


def outer_graph(group_type="workflow>Sample and decode", group_values=None, mode=0):
    """Checkpoint, prompts and latent feeding one group instance (id 10) whose image is saved."""
    return {
        "nodes": [
            {"id": 4, "type": "CheckpointLoaderSimple",
             "outputs": [out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [2, 3]), out("VAE", "VAE", [6])],
             "widgets_values": ["model.safetensors"]},
            {"id": 5, "type": "EmptyLatentImage", "outputs": [out("LATENT", "LATENT", [5])],
             "widgets_values": [512, 512, 1]},
            {"id": 6, "type": "CLIPTextEncode", "inputs": [inp("clip", "CLIP", 2)],
             "outputs": [out("CONDITIONING", "CONDITIONING", [3])], "widgets_values": ["a cat"]},
            {"id": 7, "type": "CLIPTextEncode", "inputs": [inp("clip", "CLIP", 3)],
             "outputs": [out("CONDITIONING", "CONDITIONING", [4])], "widgets_values": [""]},
            {"id": 10, "type": group_type, "mode": mode,
             "inputs": [inp("model", "MODEL", 1), inp("positive", "CONDITIONING", 3),
                        inp("negative", "CONDITIONING", 4), inp("latent_image", "LATENT", 5), inp("vae", "VAE", 6)],
             "outputs": [out("IMAGE", "IMAGE", [7])],
             "widgets_values": group_values if group_values is not None
             else [42, "fixed", 25, 7.5, "dpmpp_2m", "karras", 0.75]},
            {"id": 9, "type": "SaveImage", "inputs": [inp("images", "IMAGE", 7)], "widgets_values": ["out"]},
        ],
        "links": [[1, 4, 0, 10, 0, "MODEL"], [2, 4, 1, 6, 0, "CLIP"], [3, 6, 0, 10, 1, "CONDITIONING"],
                  [4, 7, 0, 10, 2, "CONDITIONING"], [5, 5, 0, 10, 3, "LATENT"], [6, 4, 2, 10, 4, "VAE"],
                  [7, 10, 0, 9, 0, "IMAGE"]],
        "extra": {"groupNodes": {"Sample and decode": copy.deepcopy(SAMPLE_AND_DECODE)}},
    }


def test_a_group_node_becomes_its_inner_nodes_with_path_ids(registry):
    api = ui_to_api(outer_graph(), registry).to_api()
    assert list(api) == ["4", "5", "6", "7", "9", "10:0", "10:1"]
    assert api["10:0"] == {"class_type": "KSampler", "_meta": {"title": "KSampler"}, "inputs": {
        "model": ["4", 0], "seed": 42, "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m", "scheduler": "karras",
        "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 0.75}}
    assert api["10:1"]["inputs"] == {"samples": ["10:0", 0], "vae": ["4", 2]}
    assert api["9"]["inputs"]["images"] == ["10:1", 0]


def test_the_legacy_slash_separator_names_the_same_group(registry):
    slash = ui_to_api(outer_graph("workflow/Sample and decode"), registry).to_api()
    assert slash == ui_to_api(outer_graph(), registry).to_api()


def test_missing_instance_values_leave_the_inner_values(registry):
    api = ui_to_api(outer_graph(group_values=[42, "fixed", 25]), registry).to_api()
    inputs = api["10:0"]["inputs"]
    assert (inputs["seed"], inputs["steps"], inputs["cfg"], inputs["sampler_name"]) == (42, 25, 8.0, "euler")


def test_an_undefined_group_is_an_error_naming_the_node(registry):
    ui = outer_graph("workflow>Nowhere")
    with pytest.raises(UIFormatError, match=r"node 10 \(workflow>Nowhere\).*'Nowhere' is not defined.*"
                                            r"'Sample and decode'") as caught:
        ui_to_api(ui, registry)
    assert caught.value.node_id == "10"


def test_a_group_holding_a_node_type_not_installed_is_an_error(registry):
    ui = outer_graph()
    ui["extra"]["groupNodes"]["Sample and decode"]["nodes"][1]["type"] = "FancyDecode"
    with pytest.raises(UIFormatError, match=r"node 10 .*'FancyDecode', which is not installed"):
        ui_to_api(ui, registry)


def test_muted_and_bypassed_instances_are_not_expanded(registry):
    muted = ui_to_api(outer_graph(mode=2), registry).to_api()
    assert not any(":" in node_id for node_id in muted) and "images" not in muted["9"]["inputs"]
    assert "10" not in muted


def test_conversion_does_not_modify_its_input(registry):
    ui = outer_graph()
    before = copy.deepcopy(ui)
    ui_to_api(ui, registry)
    assert ui == before


def test_inner_primitive_and_converted_widget_follow_the_front_ends_order(registry):
    """A primitive feeding an inner widget is a group widget (value + control); a widget converted
    to an input and left unconnected comes last, both as a widget and as an input."""
    group = {
        "nodes": [
            {"type": "PrimitiveNode", "title": "Size", "outputs": [out("INT", "INT", [])],
             "widgets_values": [64, "fixed"]},
            {"type": "EmptyLatentImage",
             "inputs": [inp("width", "INT", widget=True), inp("batch_size", "INT", widget=True)],
             "outputs": [out("LATENT", "LATENT", [])], "widgets_values": [64, 64, 1]},
            {"type": "Note", "widgets_values": ["ignored by the front end"]},
        ],
        "links": [[0, 0, 1, 0, 1, "INT"]],
    }
    ui = {"nodes": [{"id": 3, "type": "workflow>Latent", "inputs": [inp("batch_size", "INT", None, widget=True)],
                     "outputs": [out("LATENT", "LATENT", [1])], "widgets_values": [256, "fixed", 128, 4]},
                    {"id": 8, "type": "Show", "inputs": [inp("value", "*", 1)]}],
          "links": [[1, 3, 0, 8, 0, "LATENT"]], "extra": {"groupNodes": {"Latent": group}}}
    api = ui_to_api(ui, registry).to_api()
    assert api["3:1"]["inputs"] == {"width": 256, "height": 128, "batch_size": 4}
    assert api["8"]["inputs"]["value"] == ["3:1", 0]
    assert "3:0" not in api and "3:2" not in api


def test_a_link_into_an_instance_input_reaches_the_inner_converted_widget(registry):
    group = {"nodes": [{"type": "Scale", "inputs": [inp("value", "INT"), inp("factor", "INT", widget=True)],
                        "outputs": [out("value", "INT", []), out("ratio", "FLOAT", [])], "widgets_values": [2, 0.5]}],
             "links": [[None, 0, 0, 0, 1, "INT"]]}
    ui = {"nodes": [{"id": 1, "type": "Number", "outputs": [out("value", "INT", [1, 2])], "widgets_values": [3]},
                    {"id": 2, "type": "workflow>Scaler",
                     "inputs": [inp("value", "INT", 1), inp("factor", "INT", 2, widget=True)],
                     "outputs": [out("value", "INT", [3]), out("ratio", "FLOAT", [])], "widgets_values": [1.5, 9]},
                    {"id": 3, "type": "Show", "inputs": [inp("value", "*", 3)]}],
          "links": [[1, 1, 0, 2, 0, "INT"], [2, 1, 0, 2, 1, "INT"], [3, 2, 0, 3, 0, "INT"]],
          "extra": {"groupNodes": {"Scaler": group}}}
    api = ui_to_api(ui, registry).to_api()
    # Group widgets: offset (the node's own widget), then factor (converted, last); factor is linked.
    assert api["2:0"]["inputs"] == {"value": ["1", 0], "factor": ["1", 0], "offset": 1.5}
    assert api["3"]["inputs"]["value"] == ["2:0", 0]


# Shaped like a real workflow shared in the wild (a Flux sampler group made with a front end
# before 1.2.63): the legacy `workflow/` separator, inner nodes carrying `index`, links fed from
# outside with a null origin, empty per-node config, and `external` entries that hold a whole
# node object instead of its index (the front end then ignores them). Built by hand with the toy
# nodes; the original's licence is not stated.
REAL_WORLD_SHAPED = {
    "last_node_id": 28, "last_link_id": 71,
    "nodes": [
        {"id": 12, "type": "CheckpointLoaderSimple", "pos": [-110, -70], "size": {"0": 310, "1": 82}, "flags": {},
         "order": 0, "mode": 0, "outputs": [out("MODEL", "MODEL", [69]), out("CLIP", "CLIP", [10]),
                                            out("VAE", "VAE", [12])],
         "properties": {"Node name for S&R": "CheckpointLoaderSimple"}, "widgets_values": ["flux1-schnell.sft"]},
        {"id": 6, "type": "CLIPTextEncode", "order": 1, "mode": 0, "inputs": [inp("clip", "CLIP", 10)],
         "outputs": [out("CONDITIONING", "CONDITIONING", [64, 65])], "widgets_values": ["an old CRT monitor"]},
        {"id": 28, "type": "workflow/FLUX", "pos": [220, 310], "size": {"0": 280, "1": 230}, "flags": {},
         "order": 2, "mode": 0,
         "inputs": [inp("model", "MODEL", 69), inp("positive", "CONDITIONING", 64),
                    inp("negative", "CONDITIONING", 65)],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [68], "shape": 3}],
         "properties": {"Node name for S&R": "workflow/FLUX"},
         "widgets_values": [1024, 1024, 1, 651429191201607, "randomize", 4, 1, "euler", "simple", 1]},
        {"id": 8, "type": "VAEDecode", "order": 3, "mode": 0,
         "inputs": [inp("samples", "LATENT", 68), inp("vae", "VAE", 12)],
         "outputs": [out("IMAGE", "IMAGE", [41])]},
        {"id": 26, "type": "PreviewImage", "title": "FLUX.1 Schnell", "order": 4, "mode": 0,
         "inputs": [inp("images", "IMAGE", 41)]},
    ],
    "links": [[10, 12, 1, 6, 0, "CLIP"], [12, 12, 2, 8, 1, "VAE"], [41, 8, 0, 26, 0, "IMAGE"],
              [64, 6, 0, 28, 1, "CONDITIONING"], [65, 6, 0, 28, 2, "CONDITIONING"], [68, 28, 0, 8, 0, "LATENT"],
              [69, 12, 0, 28, 0, "MODEL"]],
    "groups": [], "config": {},
    "extra": {"ds": {"scale": 1.46, "offset": [157.0, 309.6]}, "groupNodes": {"FLUX": {
        "nodes": [
            {"type": "EmptyLatentImage", "pos": [470, -330], "flags": {}, "order": 4, "mode": 0,
             "outputs": [{"name": "LATENT", "type": "LATENT", "links": [], "shape": 3}],
             "properties": {"Node name for S&R": "EmptyLatentImage"}, "widgets_values": [512, 512, 1], "index": 0},
            {"type": "KSampler", "pos": [1270, 90], "flags": {}, "order": 9, "mode": 0,
             "inputs": [{"name": "model", "type": "MODEL", "link": None, "slot_index": 0},
                        {"name": "positive", "type": "CONDITIONING", "link": None, "slot_index": 1},
                        {"name": "negative", "type": "CONDITIONING", "link": None, "slot_index": 2},
                        {"name": "latent_image", "type": "LATENT", "link": None, "slot_index": 3}],
             "outputs": [{"name": "LATENT", "type": "LATENT", "links": [], "shape": 3, "slot_index": 0}],
             "properties": {"Node name for S&R": "KSampler"},
             "widgets_values": [1035243129351945, "randomize", 20, 8, "euler", "normal", 1], "index": 1},
        ],
        "links": [[None, 0, 1, 0, 12, "MODEL"], [None, 0, 1, 1, 6, "CONDITIONING"],
                  [None, 0, 1, 2, 6, "CONDITIONING"], [0, 0, 1, 3, 5, "LATENT"]],
        "external": [[{"type": "EmptyLatentImage", "index": 0}, 0, "LATENT"]],
        "config": {"0": {}, "1": {}},
    }}},
    "version": 0.4,
}


def test_a_real_world_shaped_group_converts_to_the_prompt_the_front_end_sends(registry):
    api = ui_to_api(REAL_WORLD_SHAPED, registry).to_api()
    assert api == {
        "6": {"class_type": "CLIPTextEncode", "_meta": {"title": "CLIP Text Encode (Prompt)"},
              "inputs": {"text": "an old CRT monitor", "clip": ["12", 1]}},
        "8": {"class_type": "VAEDecode", "_meta": {"title": "VAE Decode"},
              "inputs": {"samples": ["28:1", 0], "vae": ["12", 2]}},
        "12": {"class_type": "CheckpointLoaderSimple", "_meta": {"title": "Load Checkpoint"},
               "inputs": {"ckpt_name": "flux1-schnell.sft"}},
        "26": {"class_type": "PreviewImage", "_meta": {"title": "FLUX.1 Schnell"}, "inputs": {"images": ["8", 0]}},
        "28:0": {"class_type": "EmptyLatentImage", "_meta": {"title": "Empty Latent Image"},
                 "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "28:1": {"class_type": "KSampler", "_meta": {"title": "KSampler"}, "inputs": {
            "model": ["12", 0], "seed": 651429191201607, "steps": 4, "cfg": 1, "sampler_name": "euler",
            "scheduler": "simple", "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["28:0", 0],
            "denoise": 1}},
    }


def test_an_external_entry_by_index_shows_an_internally_linked_output(registry):
    ui = copy.deepcopy(REAL_WORLD_SHAPED)
    ui["extra"]["groupNodes"]["FLUX"]["external"] = [[0, 0, "LATENT"]]
    # Output 0 is now the inner latent, output 1 the sampler's: the link from output 0 follows.
    api = ui_to_api(ui, registry).to_api()
    assert api["8"]["inputs"]["samples"] == ["28:0", 0]
    assert isinstance(ui_to_api(ui, registry).nodes["28:1"].inputs["latent_image"], LinkRef)


def test_group_expansion_is_bounded(registry):
    count = MAX_FLAT_NODES // 2 + 1
    group = {"nodes": [{"type": "Number", "widgets_values": [1]}] * 2, "links": []}
    ui = {"nodes": [{"id": i, "type": "workflow>Pair", "widgets_values": []} for i in range(count)],
          "links": [], "extra": {"groupNodes": {"Pair": group}}}
    with pytest.raises(UIFormatError, match=f"more than {MAX_FLAT_NODES} nodes"):
        ui_to_api(ui, registry)


@pytest.mark.parametrize("definition, message", [
    ({"links": []}, "has no 'nodes' list"),
    ({"nodes": [{"type": "Number"}], "links": [[0, 0, 5, 0, 1, "INT"]]}, "does not join two inner nodes"),
    ({"nodes": [{"type": "Number"}], "links": "x"}, "'links' must be a list"),
    ({"nodes": [{"id": 1}], "links": []}, r"nodes\[0\] has no type"),
    ({"nodes": [{"type": "Number"}] * (MAX_FLAT_NODES + 1), "links": []}, "is larger than"),
])
def test_malformed_group_definitions_raise_a_precise_error(definition, message, registry):
    ui = {"nodes": [{"id": 2, "type": "workflow>Bad", "widgets_values": []}], "links": [],
          "extra": {"groupNodes": {"Bad": definition}}}
    with pytest.raises(UIFormatError, match=rf"node 2 \(workflow>Bad\): .*{message}"):
        ui_to_api(ui, registry)
