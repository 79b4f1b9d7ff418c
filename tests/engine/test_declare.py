"""Node declarations, and everything derived from them: object_info, input order, coercion."""

import pytest

from engine.context import RunContext
from engine.declare import NodeResult, Out, node
from engine.registry import NodeRegistry
from engine.types import Boolean, Choice, CoercionError, Float, Int, Link, String
from tests.engine.toy_nodes import Scale, Text


def test_object_info_has_comfyui_shape():
    info = NodeRegistry([Scale]).object_info()["Scale"]
    assert info["input"] == {
        "required": {"value": ["INT", {"forceInput": True}],
                     "factor": ["INT", {"default": 2, "min": 0, "max": 100, "step": 1}]},
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

        def run(self, ctx: RunContext, **kw):
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


def test_run_that_lacks_a_declared_input_is_refused_at_declaration():
    with pytest.raises(TypeError, match=r"node 'Forgetful': Forgetful\.run does not accept declared input\(s\) 'b'"):
        @node("Forgetful", outputs=[Out("INT")])
        class Forgetful:
            a = Int(1)
            b = Int(2, optional=True)

            def run(self, ctx: RunContext, a):
                return (a,)


def test_run_with_a_required_parameter_that_is_not_an_input_is_refused():
    with pytest.raises(TypeError, match=r"node 'Needy': Needy\.run requires parameter\(s\) 'scale' that are not "
                                        r"declared inputs"):
        @node("Needy", outputs=[Out("INT")])
        class Needy:
            a = Int(1)

            def run(self, ctx: RunContext, a, scale):
                return (a * scale,)


def test_run_with_star_args_or_positional_only_inputs_is_refused():
    with pytest.raises(TypeError, match=r"node 'Starry': Starry\.run takes \*values"):
        @node("Starry", outputs=[Out("INT")])
        class Starry:
            a = Int(1)

            def run(self, ctx: RunContext, *values, **inputs):
                return (0,)
    with pytest.raises(TypeError, match=r"node 'Slashed': Slashed\.run has positional-only parameter\(s\) 'a'"):
        @node("Slashed", outputs=[Out("INT")])
        class Slashed:
            a = Int(1)

            def run(self, ctx: RunContext, a, /):
                return (a,)


def test_run_without_ctx_is_refused():
    with pytest.raises(TypeError, match=r"node 'NoCtx': NoCtx\.run must take 'ctx' as its first parameter"):
        @node("NoCtx", outputs=[Out("INT")])
        class NoCtx:
            def run(self, *, a=1):
                return (a,)


def test_run_taking_kwargs_or_defaulted_extras_is_accepted_and_runs():
    @node("Flexible", outputs=[Out("INT")])
    class Flexible:
        a = Link("INT")
        b = Int(2, optional=True)

        def run(self, ctx: RunContext, a, verbose=False, **rest):
            return (a + rest["b"],)

    assert Flexible.__node_declaration__.input_order == ["a", "b"]
    assert Flexible().run(None, a=1, b=2) == (3,)


def test_hooks_receive_widget_constants_only_and_are_checked_too():
    with pytest.raises(TypeError, match=r"node 'BadPrint': BadPrint\.fingerprint does not accept declared "
                                        r"input\(s\) 'name'"):
        @node("BadPrint", outputs=[Out("INT")])
        class BadPrint:
            name = String("x")

            def fingerprint(self, paths, other=""):
                return other

            def run(self, ctx: RunContext, name):
                return (0,)
    # the image is a link and never reaches validate_inputs, so requiring it can never work
    with pytest.raises(TypeError, match=r"node 'BadCheck': BadCheck\.validate_inputs requires parameter\(s\) "
                                        r"'image', but it receives only the constant widget values"):
        @node("BadCheck", outputs=[Out("INT")])
        class BadCheck:
            image = Link("IMAGE")
            size = Int(8)

            def validate_inputs(self, paths, image, size):
                return None

            def run(self, ctx: RunContext, image, size):
                return (0,)

    @node("GoodHooks", outputs=[Out("INT")])
    class GoodHooks:
        image = Link("IMAGE")
        size = Int(8)
        mode = String("a", optional=True)

        def fingerprint(self, paths, size, mode="a"):
            return f"{size}{mode}"

        def validate_inputs(self, paths, **constants):
            return None

        def run(self, ctx: RunContext, image, size, mode):
            return (size,)

    assert GoodHooks.__node_declaration__.has_fingerprint


def test_a_pack_whose_node_breaks_the_contract_is_reported_as_a_failure(tmp_path):
    (tmp_path / "wrong_pack.py").write_text(
        "from engine.declare import node, Out\nfrom engine.types import Int\n"
        "@node('WrongNode', outputs=[Out('INT')])\nclass WrongNode:\n    x = Int(1)\n"
        "    def run(self, ctx, y):\n        return (y,)\n")
    registry = NodeRegistry()
    registry.load_extensions(tmp_path)
    assert "WrongNode" not in registry
    (failure,) = registry.failures
    assert failure.name == "wrong_pack.py"
    assert "node 'WrongNode': WrongNode.run does not accept declared input(s) 'x'" in failure.error


def test_a_link_only_input_of_a_widget_type_is_marked_force_input():
    from engine.types import Link

    assert Link("INT").object_info() == ["INT", {"forceInput": True}]
    assert Link("STRING", tooltip="t").object_info() == ["STRING", {"tooltip": "t", "forceInput": True}]
    assert Link("LATENT").object_info() == ["LATENT"]
