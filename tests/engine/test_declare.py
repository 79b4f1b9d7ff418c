"""Node declarations, and everything derived from them: object_info, input order, coercion."""

import pytest

from engine.declare import NodeResult, Out, node
from engine.registry import NodeRegistry
from engine.types import Boolean, Choice, CoercionError, Float, Int, Link, String
from tests.engine.toy_nodes import Scale, Text


def test_object_info_has_comfyui_shape():
    info = NodeRegistry([Scale]).object_info()["Scale"]
    assert info["input"] == {
        "required": {"value": ["INT"], "factor": ["INT", {"default": 2, "min": 0, "max": 100, "step": 1}]},
        "optional": {"offset": ["FLOAT", {"default": 0.0, "min": -10.0, "max": 10.0, "step": 0.5}]},
    }
    assert info["input_order"] == {"required": ["value", "factor"], "optional": ["offset"]}
    assert info["output"] == ["INT", "FLOAT"]
    assert info["output_name"] == ["value", "ratio"]
    assert info["output_is_list"] == [False, False]
    assert info["name"] == "Scale" and info["display_name"] == "Scale"
    assert info["description"] == "value × factor, and the factor as a float."
    assert info["category"] == "toy/math"
    assert info["output_node"] is False


def test_combo_type_is_its_list_of_choices_and_strings_say_multiline():
    info = NodeRegistry([Text]).object_info()["Text"]
    assert info["input"]["required"]["text"] == ["STRING", {"default": "hello", "multiline": True}]
    assert info["input"]["required"]["shout"] == ["BOOLEAN", {"default": False}]
    assert info["input"]["optional"]["style"] == [["plain", "fancy"]]


def test_choices_provider_is_asked_each_time(tmp_path):
    folder = tmp_path / "things"
    folder.mkdir()
    spec = Choice(lambda paths: sorted(p.name for p in folder.iterdir()))
    assert spec.object_info() == [[]]
    (folder / "b.bin").touch()
    (folder / "a.bin").touch()
    assert spec.object_info() == [["a.bin", "b.bin"]]


def test_seed_control_and_upload_are_extra_widget_values():
    assert Int(0, control_after_generate=True).extra_widget_values == 1
    assert Int(0, control_after_generate=True).object_info()[1]["control_after_generate"] is True
    assert Choice(["a"], image_upload=True).extra_widget_values == 1
    assert Int(0).extra_widget_values == 0


def test_input_order_is_required_then_optional_in_declaration_order():
    @node("Mixed", outputs=[Out("INT")])
    class Mixed:
        z = Int(1, optional=True)
        b = Link("INT")
        a = Int(2)

        def run(self, ctx, **kw):
            return (0,)

    assert Mixed.__node_declaration__.input_order == ["b", "a", "z"]


@pytest.mark.parametrize("spec, raw, expected", [
    (Int(), "20", 20), (Int(), " 7 ", 7), (Int(), 3.0, 3), (Int(), 5, 5),
    (Float(), "7.5", 7.5), (Float(), 8, 8.0),
    (Boolean(), "true", True), (Boolean(), "false", False), (Boolean(), 1, True), (Boolean(), "enable", True),
    (String(), "x", "x"), (String(), 12, "12"),
    (Choice(["a", "b"]), "a", "a"),
])
def test_constants_are_coerced_as_users_expect(spec, raw, expected):
    assert spec.coerce(raw) == expected
    assert type(spec.coerce(raw)) is type(expected)


@pytest.mark.parametrize("spec, raw", [
    (Int(), "2.5"), (Int(), "twenty"), (Int(), True), (Int(), 2.5), (Int(), None),
    (Float(), "fast"), (Float(), False), (Boolean(), "maybe"), (String(), None), (String(), [1]),
])
def test_uncoercible_constants_raise(spec, raw):
    with pytest.raises(CoercionError):
        spec.coerce(raw)


def test_a_node_without_run_is_refused():
    with pytest.raises(TypeError, match="no run"):
        @node("Broken")
        class Broken:
            pass


def test_node_result_carries_ui_output():
    result = NodeResult(outputs=(1,), ui={"images": []})
    assert result.outputs == (1,) and result.ui == {"images": []}


def test_registry_loads_extensions_and_reports_broken_ones(tmp_path):
    (tmp_path / "good_pack.py").write_text(
        "from engine.declare import node, Out\nfrom engine.types import Int\n"
        "@node('GoodNode', outputs=[Out('INT')])\nclass GoodNode:\n    x = Int(1)\n"
        "    def run(self, ctx, x):\n        return (x,)\n")
    (tmp_path / "broken_pack.py").write_text("raise ImportError('needs a library that is missing')\n")
    (tmp_path / "syntax_pack.py").write_text("def (:\n")
    package = tmp_path / "pkg_pack"
    package.mkdir()
    (package / "__init__.py").write_text("from .impl import PkgNode\n")
    (package / "impl.py").write_text(
        "from engine.declare import node\n@node('PkgNode', output_node=True)\nclass PkgNode:\n"
        "    def run(self, ctx):\n        return None\n")
    registry = NodeRegistry()
    added = registry.load_extensions(tmp_path)
    assert "GoodNode" in added and "GoodNode" in registry
    assert "PkgNode" in registry
    assert {f.name for f in registry.failures} == {"broken_pack.py", "syntax_pack.py"}
    assert "needs a library that is missing" in next(f.error for f in registry.failures if f.name == "broken_pack.py")
    assert "SyntaxError" in next(f.error for f in registry.failures if f.name == "syntax_pack.py")


def test_registry_refuses_undeclared_classes():
    with pytest.raises(TypeError, match="not a declared node"):
        NodeRegistry([object])
