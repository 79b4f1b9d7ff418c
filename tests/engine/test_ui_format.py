"""UI format → API format: each fixture in fixtures/ui/ is a UI workflow with its exact expected API JSON."""

import copy
import json
from pathlib import Path

import pytest

from engine.registry import NodeRegistry
from engine.ui_format import UIFormatError, is_ui_format, ui_to_api
from engine.workflow import LinkRef, Workflow
from tests.engine.toy_nodes import TOY_NODES, comfy_toy_nodes

FIXTURES = Path(__file__).parent / "fixtures" / "ui"
CASES = sorted(p.name[: -len(".api.json")] for p in FIXTURES.glob("*.api.json"))


@pytest.fixture(scope="module")
def comfy_registry():
    return NodeRegistry([*comfy_toy_nodes(), *TOY_NODES])


def load(name: str):
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def expected(name: str):
    return json.loads((FIXTURES / f"{name}.api.json").read_text(encoding="utf-8"))


def structural_problems(workflow: Workflow, registry: NodeRegistry) -> list[str]:
    """What validation would object to in the graph's shape: missing inputs, bad links."""
    problems = []
    for node_id, spec in workflow.nodes.items():
        decl = registry.get(spec.class_type)
        if decl is None:
            problems.append(f"{node_id}: unknown type {spec.class_type}")
            continue
        for name, input_spec in decl.inputs.items():
            value = spec.inputs.get(name)
            if value is None and not input_spec.optional:
                problems.append(f"{node_id}.{name}: missing")
            elif isinstance(value, LinkRef):
                source = workflow.nodes.get(value.node_id)
                source_decl = registry.get(source.class_type) if source else None
                if source_decl is None or value.slot >= len(source_decl.outputs):
                    problems.append(f"{node_id}.{name}: link to nothing {value}")
                elif not input_spec.accepts_link_type(source_decl.outputs[value.slot].type):
                    problems.append(f"{node_id}.{name}: wrong type {source_decl.outputs[value.slot].type}")
    return problems


def test_every_feature_has_a_fixture():
    assert set(CASES) >= {"widgets_seed", "converted_widget", "muted", "bypassed", "reroute_chain", "primitive",
                          "notes", "short_widgets", "subgraph", "subgraph_nested", "dict_widgets",
                          "unknown_type", "dangling_links"}


@pytest.mark.parametrize("name", CASES)
def test_fixture_converts_to_its_expected_api_json(name, comfy_registry):
    assert ui_to_api(load(name), comfy_registry).to_api() == expected(name)


@pytest.mark.parametrize("name", CASES)
def test_conversion_is_deterministic_with_ids_in_ascending_order(name, comfy_registry):
    first = ui_to_api(load(name), comfy_registry).dumps()
    assert ui_to_api(load(name), comfy_registry).dumps() == first
    ids = list(json.loads(first))
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split(":")))


@pytest.mark.parametrize("name", ["widgets_seed", "converted_widget", "primitive", "notes", "subgraph_nested",
                                  "dict_widgets"])
def test_well_formed_files_give_a_valid_graph(name, comfy_registry):
    assert structural_problems(ui_to_api(load(name), comfy_registry), comfy_registry) == []


@pytest.mark.parametrize("name, problems", [
    ("muted", ["3.model: missing", "3.steps: missing"]),
    ("bypassed", ["17.samples: missing"]),                 # a bypassed VAEEncode has no LATENT input
    ("reroute_chain", ["34.vae: missing"]),                # a reroute with nothing plugged in
    ("short_widgets", ["61.ckpt_name: missing"]),          # a file combo has no default to fill in
    ("subgraph", ["17.samples: missing"]),                 # fed by a muted subgraph instance
    ("dangling_links", ["3.positive: missing", "7.clip: missing"]),
    ("unknown_type", ["70: unknown type UltimateSDUpscale", "71: unknown type Image Save (WAS)"]),
])
def test_what_cannot_be_resolved_is_left_for_validation_to_report(name, problems, comfy_registry):
    assert structural_problems(ui_to_api(load(name), comfy_registry), comfy_registry) == problems


def test_the_result_round_trips_through_the_api_format(comfy_registry):
    workflow = ui_to_api(load("subgraph"), comfy_registry)
    assert Workflow.from_api(workflow.to_api()).to_api() == workflow.to_api()
    assert workflow.nodes["8"].inputs["samples"] == LinkRef("10:3", 0)


def test_conversion_does_not_modify_its_input(comfy_registry):
    ui = load("subgraph_nested")
    before = copy.deepcopy(ui)
    ui_to_api(ui, comfy_registry)
    assert ui == before


def test_seed_control_value_is_skipped_whatever_it_holds(comfy_registry):
    # ComfyUI's own default workflow stores `true` where the control mode belongs.
    ui = load("widgets_seed")
    next(n for n in ui["nodes"] if n["id"] == 3)["widgets_values"][1] = True
    assert ui_to_api(ui, comfy_registry).nodes["3"].inputs["steps"] == 20


def test_title_falls_back_to_display_name_then_type(comfy_registry):
    workflow = ui_to_api(load("unknown_type"), comfy_registry)
    assert workflow.nodes["9"].title == "Save Image"
    assert workflow.nodes["3"].title == "KSampler"
    assert workflow.nodes["70"].title == "UltimateSDUpscale"


@pytest.mark.parametrize("data, result", [
    ({"nodes": [], "links": []}, True),
    ({"last_node_id": 0, "nodes": [], "links": None, "version": 0.4}, True),
    ({"3": {"class_type": "KSampler", "inputs": {}}}, False),
    ({"nodes": {"1": {}}, "links": []}, False),
    ({"nodes": []}, False),
    ([], False),
    ("nodes", False),
])
def test_is_ui_format(data, result):
    assert is_ui_format(data) is result


MALFORMED = json.loads((FIXTURES / "malformed.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", MALFORMED, ids=[c["case"] for c in MALFORMED])
def test_malformed_input_raises_a_precise_error(case, comfy_registry):
    with pytest.raises(UIFormatError) as info:
        ui_to_api(case["ui"], comfy_registry)
    assert case["message"] in str(info.value)
    assert isinstance(info.value, ValueError)
    assert info.value.node_id == case.get("node_id")


def nested_definitions(depth: int, fan_out: int) -> dict:
    """Definition i holds `fan_out` instances of definition i+1; the last holds one Number."""
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(depth)]
    subgraphs = [{"id": sid, "name": f"level {i}", "links": [],
                  "nodes": [{"id": k + 1, "type": ids[i + 1]} for k in range(fan_out)] if i + 1 < depth
                  else [{"id": 1, "type": "Number", "widgets_values": [i]}]}
                 for i, sid in enumerate(ids)]
    return {"nodes": [{"id": 1, "type": ids[0]}], "links": [], "definitions": {"subgraphs": subgraphs}}


def test_nested_subgraphs_expand_with_path_ids(comfy_registry):
    assert list(ui_to_api(nested_definitions(3, 2), comfy_registry).nodes) == [
        "1:1:1:1", "1:1:2:1", "1:2:1:1", "1:2:2:1"]


@pytest.mark.parametrize("depth, fan_out, message", [(40, 1, "nested more than 32 deep"),
                                                     (7, 10, "more than 100000 nodes")])
def test_subgraph_expansion_is_bounded(depth, fan_out, message, comfy_registry):
    with pytest.raises(UIFormatError, match=message):
        ui_to_api(nested_definitions(depth, fan_out), comfy_registry)


@pytest.mark.parametrize("ui", [None, [], "{}", 3])
def test_non_objects_are_rejected(ui, comfy_registry):
    with pytest.raises(UIFormatError, match="JSON object"):
        ui_to_api(ui, comfy_registry)
