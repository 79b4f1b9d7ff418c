"""`/object_info` of the Inspire, Impact, Tiled KSampler and Ultimate SD Upscale nodes matches the packs'
declarations: input names, order, options, outputs."""

import pytest

from engine.registry import NodeRegistry
from nodes.packs import impact, inspire, tiled_ksampler, ultimate_sd_upscale
from tests.nodes.comfy_sampling_packs_object_info import SAMPLING_PACK_NODES
from tests.nodes.test_pack_object_info import comparable


@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    for module in (impact, inspire, tiled_ksampler, ultimate_sd_upscale):
        registry.register_module(module)
    return registry.object_info()


@pytest.mark.parametrize("class_type", sorted(SAMPLING_PACK_NODES))
def test_inputs_and_outputs_match_the_pack(object_info, class_type):
    ours, theirs = object_info[class_type], SAMPLING_PACK_NODES[class_type]
    for section in ("required", "optional"):
        expected, actual = theirs.get(section, {}), ours["input"].get(section, {})
        assert list(actual) == list(expected), f"{section} input order"
        for name, entry in expected.items():
            if entry[0] is not None:
                assert comparable(actual[name]) == comparable(entry), name
    assert ours["output"] == theirs["output"]
