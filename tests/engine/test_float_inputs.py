"""FLOAT inputs take finite numbers only: JSON's NaN and Infinity are refused at validation, per input."""

import json

import pytest

from engine.types import CoercionError, Float
from engine.validate import validate
from engine.workflow import Workflow


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "nan", "Infinity", "-inf", 1e400])
def test_a_float_input_refuses_what_is_not_a_finite_number(value):
    with pytest.raises(CoercionError, match="not a finite number"):
        Float(1.0, min=0.0, max=100.0).coerce(value)


@pytest.mark.parametrize("value", [0, 7.5, "7.5", -0.0, 1e300])
def test_finite_numbers_still_pass(value):
    assert Float(1.0).coerce(value) == float(value)


def test_a_nan_from_json_is_an_error_on_that_input_not_a_black_image(registry):
    prompt = json.loads('{"1": {"class_type": "Number", "inputs": {"value": 1}},'
                        ' "2": {"class_type": "Scale", "inputs": {"value": ["1", 0], "factor": 2, "offset": NaN}},'
                        ' "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}')

    result = validate(Workflow.from_api(prompt), registry)

    assert not result.ok
    [error] = result.node_errors["2"]["errors"]
    assert error["type"] == "invalid_input_type" and error["extra_info"]["input_name"] == "offset"
    assert "not a finite number" in error["details"]
