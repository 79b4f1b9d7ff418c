"""`/object_info` of the latent, mask and primitive toolbox nodes matches ComfyUI's declarations."""

import pytest

from engine.registry import NodeRegistry
from tests.nodes.comfy_object_info_table import COMFY_NODES

TOOLBOX_MODULES = ("nodes.latent_ops", "nodes.latent_batch", "nodes.mask_ops", "nodes.primitives")


@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    for module in TOOLBOX_MODULES:
        registry.register_module(__import__(module, fromlist=["_"]))
    return registry.object_info()


def comparable(entry) -> list:
    """[TYPE, options] without our tooltips; ComfyUI's `multiline: False` is the default, so it is dropped."""
    kind, options = entry[0], dict(entry[1]) if len(entry) > 1 else {}
    options.pop("tooltip", None)
    if options.get("multiline") is False:
        del options["multiline"]
    return [list(kind) if isinstance(kind, (list, tuple)) else kind, options]


def test_every_toolbox_node_of_the_table_is_registered(object_info):
    assert set(COMFY_NODES) <= set(object_info)


@pytest.mark.parametrize("class_type", sorted(COMFY_NODES))
def test_inputs_match_comfyui_in_name_order_type_and_options(object_info, class_type):
    ours, theirs = object_info[class_type], COMFY_NODES[class_type]
    for section in ("required", "optional"):
        expected = theirs.get(section, {})
        actual = ours["input"].get(section, {})
        assert list(actual) == list(expected), f"{section} input order"
        for name, entry in expected.items():
            assert comparable(actual[name]) == comparable(entry), name
    assert ours["input_order"]["required"] == list(theirs["required"])


@pytest.mark.parametrize("class_type", sorted(COMFY_NODES))
def test_outputs_category_and_display_name_match_comfyui(object_info, class_type):
    ours, theirs = object_info[class_type], COMFY_NODES[class_type]
    assert ours["output"] == theirs["output"]
    assert ours["category"] == theirs["category"]
    assert ours["display_name"] == theirs["display_name"]
    assert ours["output_node"] == theirs.get("output_node", False)


def test_a_default_is_listed_only_where_comfyui_declares_one(object_info):
    assert "default" not in object_info["PrimitiveInt"]["input"]["required"]["value"][1]
    assert object_info["LatentBatchSeedBehavior"]["input"]["required"]["seed_behavior"][1] == {"default": "fixed"}
