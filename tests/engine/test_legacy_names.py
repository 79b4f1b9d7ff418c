"""A node's `legacy_names`: class names older workflow files saved for it still find it, in API
prompts and UI files alike, while `/object_info` lists only today's name."""

from engine.declare import Out, node
from engine.registry import NodeRegistry
from engine.types import Int, Link
from engine.ui_format import ui_to_api
from engine.validate import validate
from tests.engine.helpers import api


@node("Doubled", outputs=[Out("INT", "INT")], legacy_names=("Doubled ", "OldDoubled"))
class Doubled:
    value = Int(1)

    def run(self, ctx, value):
        return (value * 2,)


@node("ShowInt", outputs=[], output_node=True)
class ShowInt:
    value = Link("INT")

    def run(self, ctx, value):
        return ()


def registry() -> NodeRegistry:
    return NodeRegistry([Doubled, ShowInt])


def test_an_old_class_name_validates_as_today_s_node():
    result = validate(api({"1": ("Doubled ", {"value": 3}), "2": ("ShowInt", {"value": ["1", 0]})}), registry())
    assert result.ok, result.node_errors
    assert registry().get("OldDoubled") is registry().get("Doubled")
    assert "Doubled " in registry() and "Nope" not in registry()


def test_object_info_lists_only_today_s_name():
    assert set(registry().object_info()) == {"Doubled", "ShowInt"}


def test_a_ui_file_saved_with_the_old_name_converts_with_its_widget_values():
    ui = {"nodes": [{"id": 1, "type": "OldDoubled", "widgets_values": [7], "inputs": [],
                     "outputs": [{"name": "INT", "type": "INT", "links": [1]}]},
                    {"id": 2, "type": "ShowInt", "inputs": [{"name": "value", "type": "INT", "link": 1}],
                     "widgets_values": []}],
          "links": [[1, 1, 0, 2, 0, "INT"]]}
    workflow = ui_to_api(ui, registry())
    assert workflow.nodes["1"].inputs["value"] == 7
    assert validate(workflow, registry()).ok

