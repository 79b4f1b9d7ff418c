"""The API-format workflow model: JSON in, JSON out, nothing lost."""

import json

import pytest

from engine.workflow import LinkRef, MalformedLink, Workflow, WorkflowFormatError

COMFY_EXAMPLE = {
    "3": {"class_type": "KSampler", "_meta": {"title": "My sampler"},
          "inputs": {"model": ["4", 0], "seed": 8566257, "steps": 20, "cfg": 8.0,
                     "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5.safetensors"}},
    "5": {"class_type": "Lister", "inputs": {"items": {"__value__": [1, 2, 3]}}},
}


def test_links_constants_and_literal_lists_are_told_apart():
    wf = Workflow.from_api(COMFY_EXAMPLE)
    assert wf.nodes["3"].inputs["model"] == LinkRef("4", 0)
    assert wf.nodes["3"].inputs["seed"] == 8566257
    assert wf.nodes["5"].inputs["items"] == [1, 2, 3]
    assert wf.nodes["3"].title == "My sampler"


def test_round_trip_keeps_meta_title_and_literal_lists():
    wf = Workflow.from_api(COMFY_EXAMPLE)
    again = json.loads(wf.dumps())
    assert again["3"]["_meta"] == {"title": "My sampler"}
    assert again["5"]["inputs"]["items"] == {"__value__": [1, 2, 3]}
    assert again["3"]["inputs"]["model"] == ["4", 0]
    assert Workflow.from_api(again) == wf


def test_integer_link_ids_become_strings():
    wf = Workflow.from_api({"1": {"class_type": "A", "inputs": {"x": [2, 1]}}})
    assert wf.nodes["1"].inputs["x"] == LinkRef("2", 1)


def test_a_list_that_is_not_a_link_is_kept_as_malformed():
    wf = Workflow.from_api({"1": {"class_type": "A", "inputs": {"x": [1, 2, 3], "y": ["2", "0"]}}})
    assert wf.nodes["1"].inputs["x"] == MalformedLink([1, 2, 3])
    assert wf.nodes["1"].inputs["y"] == MalformedLink(["2", "0"])


@pytest.mark.parametrize("data, fragment", [
    ([], "JSON object"),
    ({"1": "KSampler"}, "node 1: expected an object"),
    ({"1": {"inputs": {}}}, "node 1: missing or invalid 'class_type'"),
    ({"1": {"class_type": "A", "inputs": [1]}}, "'inputs' must be an object"),
])
def test_malformed_workflows_are_refused_with_the_node_named(data, fragment):
    with pytest.raises(WorkflowFormatError, match=fragment):
        Workflow.from_api(data)


def test_invalid_json_text_is_a_format_error():
    with pytest.raises(WorkflowFormatError, match="not valid JSON"):
        Workflow.loads("{not json")


def test_save_and_load(tmp_path):
    wf = Workflow.from_api(COMFY_EXAMPLE)
    wf.save(tmp_path / "w.json")
    assert Workflow.load(tmp_path / "w.json") == wf
