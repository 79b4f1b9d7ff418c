"""`/object_info` of every ControlNet node matches ComfyUI's declarations (comfy_controlnet_object_info.py)."""

import pytest

import nodes.controlnet
from engine.registry import NodeRegistry
from tests.nodes.comfy_controlnet_object_info import COMFY_CONTROLNET_NODES


@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    registry.register_module(nodes.controlnet)
    return registry.object_info()


def comparable(entry) -> tuple:
    """(type, options) without our tooltips; a model-file combo compares as 'a list of choices'."""
    kind, options = entry[0], {k: v for k, v in (entry[1] if len(entry) > 1 else {}).items() if k != "tooltip"}
    return list(kind) if isinstance(kind, (list, tuple)) else kind, options


def test_the_module_declares_exactly_comfyuis_controlnet_nodes(object_info):
    assert set(object_info) == set(COMFY_CONTROLNET_NODES)


@pytest.mark.parametrize("class_type", sorted(COMFY_CONTROLNET_NODES))
def test_inputs_match_comfyui_in_name_order_type_and_options(object_info, class_type):
    ours, theirs = object_info[class_type], COMFY_CONTROLNET_NODES[class_type]
    for section in ("required", "optional"):
        expected = theirs.get(section, [])
        actual = ours["input"].get(section, {})
        assert list(actual) == [name for name, *_ in expected], f"{section} input order"
        for name, kind, options in expected:
            got_kind, got_options = comparable(actual[name])
            if kind is None:
                assert isinstance(got_kind, list), name
            else:
                assert got_kind == kind, name
            assert got_options == options, name


@pytest.mark.parametrize("class_type", sorted(COMFY_CONTROLNET_NODES))
def test_outputs_category_display_name_and_deprecation_match_comfyui(object_info, class_type):
    ours, theirs = object_info[class_type], COMFY_CONTROLNET_NODES[class_type]
    assert list(zip(ours["output"], ours["output_name"])) == theirs["outputs"]
    assert ours["category"] == theirs["category"]
    assert ours["display_name"] == theirs["display_name"]
    assert ours["deprecated"] == theirs.get("deprecated", False)
