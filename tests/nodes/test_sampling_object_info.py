"""`/object_info` of every custom-sampling node matches ComfyUI's declarations (comfy_sampling_object_info)."""

import json

import pytest

from engine.registry import NodeRegistry
from engine.types import Float
from tests.nodes.comfy_sampling_object_info import COMFY_SAMPLING_NODES, KSAMPLER_CHOICES

MODULES = ("nodes.sampler_select", "nodes.custom_sampling", "nodes.model_sampling_nodes", "nodes.sampler_nodes")


@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    for module in MODULES:
        registry.register_module(__import__(module, fromlist=["_"]))
    return json.loads(json.dumps(registry.object_info()))  # as a client reads it


def comparable(entry) -> list:
    """[TYPE, options as JSON] without our tooltips: JSON tells `"round": false` from 0.0 and 1 from 1.0."""
    kind, options = entry[0], {k: v for k, v in (entry[1] if len(entry) > 1 else {}).items() if k != "tooltip"}
    return [list(kind) if isinstance(kind, (list, tuple)) else kind, json.dumps(options, sort_keys=True)]


def test_every_node_of_the_table_is_registered(object_info):
    assert set(COMFY_SAMPLING_NODES) <= set(object_info)


@pytest.mark.parametrize("class_type", sorted(COMFY_SAMPLING_NODES))
def test_inputs_match_comfyui_in_name_order_type_and_options(object_info, class_type):
    ours, theirs = object_info[class_type], COMFY_SAMPLING_NODES[class_type]
    actual = ours["input"].get("required", {})
    assert list(actual) == list(theirs["required"])
    assert ours["input"].get("optional", {}) == {}
    for name, entry in theirs["required"].items():
        if entry[0] == KSAMPLER_CHOICES:
            entry = (object_info["KSampler"]["input"]["required"][name][0], entry[1])
        assert comparable(actual[name]) == comparable(entry), name


@pytest.mark.parametrize("class_type", sorted(COMFY_SAMPLING_NODES))
def test_outputs_category_and_display_name_match_comfyui(object_info, class_type):
    ours, theirs = object_info[class_type], COMFY_SAMPLING_NODES[class_type]
    assert ours["output"] == theirs["output"]
    assert ours["output_name"] == theirs["output_name"]
    assert ours["category"] == theirs["category"]
    assert ours["display_name"] == theirs["display_name"]
    assert ours["output_node"] is False


def test_an_unrounded_float_is_listed_with_round_false():
    options = Float(1.0, min=0.0, max=100.0, step=0.01, round=False).options()
    assert json.dumps(options["round"]) == "false"
    assert Float(8.0, step=0.1, round=0.01).options()["round"] == 0.01
    assert "round" not in Float(1.0).options()
