"""`/object_info` of the rebuilt pack nodes matches the packs' declarations: input names, order, options, outputs."""

import pytest

from engine.registry import NodeRegistry
from tests.nodes.comfy_packs_object_info import PACK_NODES


@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    registry.load_package("nodes.packs")
    return registry.object_info()


def comparable(entry) -> list:
    """[TYPE, options] without our tooltips; `multiline: False` is the default. The editor adds a
    seed's control widget by its name whether declared or not, so that flag is left out too."""
    kind, options = entry[0], dict(entry[1]) if len(entry) > 1 else {}
    for key in ("tooltip", "control_after_generate"):
        options.pop(key, None)
    if options.get("multiline") is False:
        del options["multiline"]
    return [list(kind) if isinstance(kind, (list, tuple)) else kind, options]


@pytest.mark.parametrize("class_type", sorted(PACK_NODES))
def test_inputs_and_outputs_match_the_pack(object_info, class_type):
    ours, theirs = object_info[class_type], PACK_NODES[class_type]
    for section in ("required", "optional"):
        expected, actual = theirs.get(section, {}), ours["input"].get(section, {})
        assert list(actual) == list(expected), f"{section} input order"
        for name, entry in expected.items():
            if entry[0] is None:   # choices read from a folder
                continue
            assert comparable(actual[name]) == comparable(entry), name
    assert ours["output"] == theirs["output"]
    assert ours["output_name"] == theirs.get("output_name", theirs["output"])
    assert ours["output_node"] == theirs.get("output_node", False)
