"""What a node's `validate_inputs` may return: None, "" or True (ComfyUI's VALIDATE_INPUTS convention) pass;
a message fails validation with it."""

import pytest

from engine.context import RunContext
from engine.declare import Out, node
from engine.registry import NodeRegistry
from engine.types import Int
from engine.validate import validate
from tests.engine.helpers import api
from tests.engine.toy_nodes import TOY_NODES


@node("Checked", category="toy", outputs=[Out("INT")])
class Checked:
    """Its check returns what `value` picks: None, "", True, or a message."""

    value = Int(0, min=0, max=3)

    def validate_inputs(self, paths, value: int = 0, **_):
        return [None, "", True, "value 3 is refused"][value]

    def run(self, ctx: RunContext, value):
        return (value,)


@pytest.mark.parametrize("value, ok", [(0, True), (1, True), (2, True), (3, False)])
def test_none_empty_and_true_pass_and_a_message_fails(value, ok):
    registry = NodeRegistry([*TOY_NODES, Checked])
    result = validate(api({"1": ("Checked", {"value": value}), "2": ("Show", {"value": ["1", 0]})}), registry)
    assert result.ok is ok
    if not ok:
        assert result.node_errors["1"]["errors"][0]["message"] == "value 3 is refused"
