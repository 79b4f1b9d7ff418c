"""load_package loads subpackages that opt in with NODE_PACKAGE, and collects modules' missing-node explanations."""

import sys
import textwrap

import pytest

from engine.registry import NodeRegistry

NODE_MODULE = textwrap.dedent('''
    from engine.declare import Out, node

    @node("{name}", outputs=[Out("INT")])
    class Node:
        def run(self, ctx):
            return (1,)
''')


@pytest.fixture
def package(tmp_path, monkeypatch):
    root = tmp_path / "toypkg"
    for folder, marker in ((root, ""), (root / "packs", "NODE_PACKAGE = True\n"), (root / "helpers", "")):
        folder.mkdir()
        (folder / "__init__.py").write_text(marker)
    (root / "core.py").write_text(NODE_MODULE.format(name="CoreNode"))
    (root / "packs" / "one.py").write_text(NODE_MODULE.format(name="PackNode") + textwrap.dedent('''
        def explain_missing_node(class_type):
            return "ToyPack's " + class_type + " is not built" if class_type.startswith("Toy") else None
    '''))
    (root / "helpers" / "model.py").write_text(NODE_MODULE.format(name="HelperNode"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "toypkg"
    for name in [m for m in sys.modules if m == "toypkg" or m.startswith("toypkg.")]:
        del sys.modules[name]


def test_node_packages_load_and_helper_packages_do_not(package):
    registry = NodeRegistry()
    assert sorted(registry.load_package(package)) == ["CoreNode", "PackNode"]
    assert "toypkg.helpers.model" not in sys.modules


def test_a_module_can_explain_missing_names(package):
    registry = NodeRegistry()
    registry.load_package(package)
    registry.load_package(package)            # loading twice adds the explanation once
    assert len(registry.missing_explainers) == 1
    assert registry.explain_missing("ToyLoader") == "ToyPack's ToyLoader is not built"
    assert registry.explain_missing("Other") is None
