"""`/object_info` of every ControlNet node matches ComfyUI's declarations (comfy_controlnet_object_info.py)."""

import pytest

import nodes.controlnet
from engine.registry import NodeRegistry
from tests.nodes.comfy_controlnet_object_info import COMFY_CONTROLNET_NODES
from tests.nodes.object_info_checks import assert_inputs_match


@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    registry.register_module(nodes.controlnet)
    return registry.object_info()


def test_the_module_declares_exactly_comfyuis_controlnet_nodes(object_info):
    assert set(object_info) == set(COMFY_CONTROLNET_NODES)


@pytest.mark.parametrize("class_type", sorted(COMFY_CONTROLNET_NODES))
def test_inputs_match_comfyui_in_name_order_type_and_options(object_info, class_type):
    assert_inputs_match(object_info[class_type], COMFY_CONTROLNET_NODES[class_type])


@pytest.mark.parametrize("class_type", sorted(COMFY_CONTROLNET_NODES))
def test_outputs_category_display_name_and_deprecation_match_comfyui(object_info, class_type):
    ours, theirs = object_info[class_type], COMFY_CONTROLNET_NODES[class_type]
    assert list(zip(ours["output"], ours["output_name"])) == theirs["outputs"]
    assert ours["category"] == theirs["category"]
    assert ours["display_name"] == theirs["display_name"]
    assert ours["deprecated"] == theirs.get("deprecated", False)
