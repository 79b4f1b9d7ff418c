"""Validation reports every error at once, in ComfyUI's `node_errors` structure."""

import pytest

from engine.validate import Limits, validate
from tests.engine.helpers import api


def errors_of(result, node_id):
    return [(e["type"], e["extra_info"].get("input_name")) for e in result.node_errors[node_id]["errors"]]


def test_a_valid_graph_gives_a_plan_in_dependency_order(registry):
    result = validate(api({"9": ("Show", {"value": ["5", 0]}), "5": ("Add", {"a": ["1", 0], "b": ["2", 0]}),
                           "1": ("Number", {"value": 1}), "2": ("Number", {"value": 2})}), registry)
    assert result.ok
    order = result.plan.order
    assert order.index("1") < order.index("5") < order.index("9") and order.index("2") < order.index("5")
    assert result.plan.outputs == ["9"]


def test_required_input_missing(registry):
    result = validate(api({"1": ("Number", {}), "2": ("Show", {"value": ["1", 0]})}), registry)
    assert errors_of(result, "1") == [("required_input_missing", "value")]
    assert result.error["type"] == "prompt_outputs_failed_validation"
    assert result.node_errors["1"]["class_type"] == "Number"
    assert result.node_errors["1"]["dependent_outputs"] == ["2"]


def test_bad_linked_input_malformed_missing_node_and_missing_slot(registry):
    result = validate(api({
        "1": ("Number", {"value": 1}),
        "2": ("Add", {"a": ["1", 0, 9], "b": ["77", 0]}),
        "3": ("Add", {"a": ["1", 4], "b": ["1", 0]}),
        "4": ("Show", {"value": ["2", 0]}), "5": ("Show", {"value": ["3", 0]})}), registry)
    assert errors_of(result, "2") == [("bad_linked_input", "a"), ("bad_linked_input", "b")]
    assert errors_of(result, "3") == [("bad_linked_input", "a")]
    assert "Output slot 4 does not exist" in result.node_errors["3"]["errors"][0]["message"]


def test_return_type_mismatch(registry):
    result = validate(api({"1": ("Text", {"text": "x", "shout": False}), "2": ("Add", {"a": ["1", 0], "b": ["1", 0]}),
                           "3": ("Show", {"value": ["2", 0]})}), registry)
    assert errors_of(result, "2") == [("return_type_mismatch", "a"), ("return_type_mismatch", "b")]
    info = result.node_errors["2"]["errors"][0]["extra_info"]
    assert info["received_type"] == "STRING" and info["input_type"] == "INT"


def test_invalid_input_type_names_the_value(registry):
    result = validate(api({"1": ("Number", {"value": "lots"}), "2": ("Show", {"value": ["1", 0]})}), registry)
    assert errors_of(result, "1") == [("invalid_input_type", "value")]
    assert result.node_errors["1"]["errors"][0]["extra_info"]["received_value"] == "lots"


def test_a_constant_where_a_link_is_required_is_an_invalid_input_type(registry):
    result = validate(api({"1": ("Add", {"a": 1, "b": 2}), "2": ("Show", {"value": ["1", 0]})}), registry)
    assert errors_of(result, "1") == [("invalid_input_type", "a"), ("invalid_input_type", "b")]


def test_value_smaller_than_min_and_bigger_than_max(registry):
    result = validate(api({"1": ("Number", {"value": 1}), "2": ("Scale", {"value": ["1", 0], "factor": -1}),
                           "3": ("Scale", {"value": ["1", 0], "factor": 101}),
                           "4": ("Show", {"value": ["2", 0]}), "5": ("Show", {"value": ["3", 0]})}), registry)
    assert errors_of(result, "2") == [("value_smaller_than_min", "factor")]
    assert errors_of(result, "3") == [("value_bigger_than_max", "factor")]
    assert "smaller than min of 0" in result.node_errors["2"]["errors"][0]["message"]


def test_value_not_in_list(registry):
    result = validate(api({"1": ("Text", {"text": "x", "shout": False, "style": "bold"}),
                           "2": ("Show", {"value": ["1", 0]})}), registry)
    assert errors_of(result, "1") == [("value_not_in_list", "style")]
    assert "'bold' not in ['plain', 'fancy']" in result.node_errors["1"]["errors"][0]["details"]


def test_dependency_cycle_is_reported_on_every_node_of_the_cycle(registry):
    result = validate(api({"1": ("Number", {"value": 1}), "2": ("Add", {"a": ["1", 0], "b": ["3", 0]}),
                           "3": ("Add", {"a": ["1", 0], "b": ["2", 0]}), "4": ("Show", {"value": ["3", 0]})}),
                      registry)
    assert errors_of(result, "2") == [("dependency_cycle", None)]
    assert errors_of(result, "3") == [("dependency_cycle", None)]
    assert "1" not in result.node_errors


def test_self_loop_is_a_cycle(registry):
    result = validate(api({"1": ("Number", {"value": 1}), "2": ("Add", {"a": ["1", 0], "b": ["2", 0]}),
                           "3": ("Show", {"value": ["2", 0]})}), registry)
    assert errors_of(result, "2") == [("dependency_cycle", None)]


def test_missing_node_type(registry):
    result = validate(api({"1": ("Number", {"value": 1}), "2": ("FancyUpscaler", {"x": ["1", 0]}),
                           "3": ("Show", {"value": ["2", 0]})}), registry)
    assert result.error["type"] == "missing_node_type"
    assert "FancyUpscaler" in result.error["details"]
    assert errors_of(result, "2") == [("missing_node_type", None)]
    assert result.node_errors["2"]["dependent_outputs"] == ["3"]


def test_prompt_no_outputs(registry):
    result = validate(api({"1": ("Number", {"value": 1})}), registry)
    assert result.error["type"] == "prompt_no_outputs"
    assert not result.ok


def test_custom_validation_failed(registry, paths):
    result = validate(api({"1": ("ReadFile", {"name": "absent.txt"}), "2": ("Show", {"value": ["1", 0]})}),
                      registry, paths)
    assert errors_of(result, "1") == [("custom_validation_failed", None)]
    assert "absent.txt" in result.node_errors["1"]["errors"][0]["message"]


def test_every_error_is_reported_at_once(registry):
    result = validate(api({"1": ("Number", {"value": "x"}), "2": ("Scale", {"value": ["1", 0], "factor": 500}),
                           "3": ("Show", {}), "4": ("Show", {"value": ["2", 0]})}), registry)
    assert set(result.node_errors) == {"1", "2", "3"}


def test_unknown_extra_inputs_are_ignored(registry):
    result = validate(api({"1": ("Number", {"value": 1, "color": "red"}), "2": ("Show", {"value": ["1", 0]})}),
                      registry)
    assert result.ok
    assert result.plan.constants["1"] == {"value": 1}


def test_only_nodes_the_outputs_need_are_validated(registry):
    result = validate(api({"1": ("Number", {"value": 1}), "2": ("Show", {"value": ["1", 0]}),
                           "3": ("Number", {"value": "broken but unused"})}), registry)
    assert result.ok
    assert "3" not in result.plan.order


def test_partial_targets_limit_what_is_validated_and_run(registry):
    workflow = api({"1": ("Number", {"value": 1}), "2": ("Show", {"value": ["1", 0]}),
                    "3": ("Number", {"value": "bad"}), "4": ("Show", {"value": ["3", 0]})})
    assert not validate(workflow, registry).ok
    partial = validate(workflow, registry, targets=["2"])
    assert partial.ok and partial.plan.outputs == ["2"] and set(partial.plan.order) == {"1", "2"}
    assert validate(workflow, registry, targets=["99"]).error["type"] == "invalid_prompt"


def test_coerced_values_reach_the_plan(registry):
    result = validate(api({"1": ("Number", {"value": "20"}), "2": ("Scale", {"value": ["1", 0], "factor": "3"}),
                           "3": ("Show", {"value": ["2", 0]})}), registry)
    assert result.plan.constants["1"] == {"value": 20}
    assert result.plan.constants["2"] == {"factor": 3}


@pytest.mark.parametrize("limits, nodes, error", [
    (Limits(max_nodes=2), {"1": ("Number", {"value": 1}), "2": ("Show", {"value": ["1", 0]}),
                           "3": ("Number", {"value": 1})}, "graph_too_large"),
])
def test_graph_size_limit_is_a_prompt_error(registry, limits, nodes, error):
    assert validate(api(nodes), registry, limits=limits).error["type"] == error


def test_long_strings_and_deep_values_are_refused_not_processed(registry):
    limits = Limits(max_string_length=100, max_value_depth=5)
    deep = "x"
    for _ in range(50):
        deep = [deep]
    result = validate(api({"1": ("Text", {"text": "y" * 101, "shout": False}), "2": ("Show", {"value": ["1", 0]}),
                           "3": ("Text", {"text": {"__value__": deep}, "shout": False}),
                           "4": ("Show", {"value": ["3", 0]})}), registry, limits=limits)
    assert errors_of(result, "1") == [("value_too_large", "text")]
    assert errors_of(result, "3") == [("value_too_large", "text")]


def test_too_many_inputs_on_one_node(registry):
    inputs = {f"extra{i}": i for i in range(20)} | {"value": 1}
    result = validate(api({"1": ("Number", inputs), "2": ("Show", {"value": ["1", 0]})}), registry,
                      limits=Limits(max_inputs_per_node=10))
    assert errors_of(result, "1") == [("too_many_inputs", None)]
