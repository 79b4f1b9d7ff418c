"""Primitive constants, string concatenation and PreviewAny, alone and in a running graph."""

import json

import pytest
import torch

from engine.context import InterruptHandle, RunContext
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.ui_format import ui_to_api
from engine.workflow import Workflow
from nodes.latent import EmptyLatentImage
from nodes.primitives import (
    PREVIEW_MAX_CHARS,
    PreviewAny,
    PrimitiveBoolean,
    PrimitiveFloat,
    PrimitiveInt,
    PrimitiveString,
    PrimitiveStringMultiline,
    StringConcatenate,
    preview_text,
)
from tests.nodes.capture import Capture

PRIMITIVES = [PrimitiveInt, PrimitiveFloat, PrimitiveString, PrimitiveStringMultiline, PrimitiveBoolean]


def ctx():
    return RunContext(node_id="1", prompt_id="test", paths=Paths(), interrupt=InterruptHandle(),
                      emit=lambda event, data: None)


@pytest.fixture
def executor(tmp_path):
    registry = NodeRegistry([*PRIMITIVES, StringConcatenate, PreviewAny, EmptyLatentImage, Capture])
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    return Executor(registry, paths, settings={"captured": []})


@pytest.mark.parametrize("cls, value", [(PrimitiveInt, -7), (PrimitiveFloat, 2.5), (PrimitiveString, "a"),
                                        (PrimitiveStringMultiline, "a\nb"), (PrimitiveBoolean, True)])
def test_a_primitive_outputs_its_value(cls, value):
    assert cls().run(ctx(), value=value) == (value,)


def test_concatenate_joins_with_the_delimiter():
    assert StringConcatenate().run(ctx(), "red", "square", ", ") == ("red, square",)
    assert StringConcatenate().run(ctx(), "a", "b", "") == ("ab",)


def test_preview_text_shows_values_as_comfyui_does():
    assert preview_text("plain") == "plain"
    assert preview_text(3) == "3" and preview_text(0.5) == "0.5" and preview_text(False) == "False"
    assert preview_text(None) == "None"
    assert json.loads(preview_text({"a": [1, 2]})) == {"a": [1, 2]}
    assert "tensor" in preview_text(torch.zeros(2))  # not JSON: its repr
    long = preview_text("x" * (PREVIEW_MAX_CHARS + 10))
    assert len(long) == PREVIEW_MAX_CHARS + 1 and long.endswith("…")


def test_graph_of_primitives_feeds_widgets_and_previews_text(executor):
    graph = Workflow.from_api({
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "red"}},
        "2": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "square\nsmall"}},
        "3": {"class_type": "StringConcatenate", "inputs": {"string_a": ["1", 0], "string_b": ["2", 0],
                                                            "delimiter": " "}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
        "5": {"class_type": "PrimitiveInt", "inputs": {"value": 96}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": ["5", 0], "height": 64, "batch_size": 1}},
        "7": {"class_type": "Capture", "inputs": {"value": ["6", 0]}}})
    result = executor.execute(graph)
    assert result.status == "success", result.error
    assert result.outputs["4"] == {"text": ["red square\nsmall"]}
    assert executor.settings["captured"][0]["samples"].shape == (1, 4, 8, 12)


def test_a_primitive_without_its_value_fails_validation(executor):
    graph = Workflow.from_api({"1": {"class_type": "PrimitiveFloat", "inputs": {}},
                               "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    errors = executor.validate(graph).node_errors["1"]["errors"]
    assert errors[0]["type"] == "required_input_missing"


def test_ui_widgets_values_skip_the_int_control_value():
    registry = NodeRegistry([PrimitiveInt, StringConcatenate, PreviewAny])
    ui = {"nodes": [
        {"id": 1, "type": "PrimitiveInt", "inputs": [], "outputs": [{"name": "INT", "type": "INT", "links": [1]}],
         "widgets_values": [42, "increment"]},
        {"id": 2, "type": "StringConcatenate", "inputs": [], "outputs": [{"name": "STRING", "type": "STRING",
                                                                          "links": []}],
         "widgets_values": ["a", "b", "-"]},
        {"id": 3, "type": "PreviewAny", "inputs": [{"name": "source", "type": "*", "link": 1}], "outputs": [],
         "widgets_values": []}],
        "links": [[1, 1, 0, 3, 0, "INT"]]}
    api = ui_to_api(ui, registry).to_api()
    assert api["1"]["inputs"] == {"value": 42}
    assert api["2"]["inputs"] == {"string_a": "a", "string_b": "b", "delimiter": "-"}
    assert api["3"]["inputs"] == {"source": ["1", 0]}
    assert api["1"]["_meta"]["title"] == "Int"
