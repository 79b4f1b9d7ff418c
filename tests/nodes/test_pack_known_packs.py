"""A missing node of a known pack is reported with the pack's name; subpackages load only when they opt in."""

import sys

from engine.registry import NodeRegistry
from engine.validate import validate
from engine.workflow import Workflow


def registry():
    reg = NodeRegistry()
    reg.load_package("nodes")
    return reg


def test_validation_names_the_pack_of_a_missing_node():
    wf = Workflow.from_api({
        "1": {"class_type": "ADE_AnimateDiffLoaderWithContext", "inputs": {}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    })
    result = validate(wf, registry())
    assert result.error["type"] == "missing_node_type"
    expected = "AnimateDiff-Evolved's ADE_AnimateDiffLoaderWithContext is not available in this engine"
    assert expected in result.error["details"]
    assert result.node_errors["1"]["errors"][0]["message"].startswith(expected)


def test_an_unknown_name_keeps_the_plain_message():
    wf = Workflow.from_api({"1": {"class_type": "NoSuchNodeAnywhere", "inputs": {}},
                            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}})
    result = validate(wf, registry())
    assert result.node_errors["1"]["errors"][0]["message"] == "Node type 'NoSuchNodeAnywhere' not found"


def test_built_nodes_of_a_known_pack_are_not_reported_missing():
    reg = registry()
    assert "Text Multiline" in reg and "ImageResize+" in reg
    assert reg.explain_missing("Text Load Line From File").startswith("WAS Node Suite's")
    assert reg.explain_missing("Image Remove Background+").startswith("essentials's")


def test_load_package_recurses_only_into_node_packages():
    reg = registry()
    assert "nodes.packs.was_text" in sys.modules
    assert reg.get("Text _O").cls.__module__ == "nodes.packs.omar92"
    assert not any(decl.cls.__module__.startswith("nodes.models.") for decl in reg)
