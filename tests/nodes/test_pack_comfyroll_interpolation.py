"""Comfyroll's gradient and increment nodes give, frame by frame, the values of the pack's formulas."""

import pytest

from engine.registry import NodeRegistry
from nodes.packs.comfyroll_interpolation import (
    CRGradientFloat,
    CRGradientInteger,
    CRIncrementFloat,
    CRIncrementInteger,
)


@pytest.mark.parametrize("frame, value", [(0, 10.0), (2, 10.0), (3, 10.0), (4, 12.0), (7, 18.0), (8, 20.0),
                                          (9, 20.0), (100, 20.0)])
def test_gradient_float_runs_from_start_to_end_over_the_span(frame, value):
    # start 10 at frame 3, end 20 after 5 frames: 2 per frame
    out, help_url = CRGradientFloat().run(None, 10.0, 20.0, 3, 5, frame, "Lerp")
    assert out == pytest.approx(value) and help_url.endswith("#cr-gradient-float")


@pytest.mark.parametrize("frame, value", [(0, 512), (1, 682), (2, 853), (3, 1024), (4, 1024)])
def test_gradient_integer_truncates_the_distance(frame, value):
    assert CRGradientInteger().run(None, 512, 1024, 0, 3, frame, "Lerp")[0] == value


def test_a_falling_integer_gradient_truncates_towards_zero():
    assert [CRGradientInteger().run(None, 10, 0, 0, 3, f, "Lerp")[0] for f in range(4)] == [10, 7, 4, 0]


def test_a_zero_length_gradient_is_at_its_start_on_its_frame():
    assert CRGradientFloat().run(None, 1.0, 5.0, 2, 0, 2, "Lerp")[0] == 1.0
    assert CRGradientFloat().run(None, 1.0, 5.0, 2, 0, 3, "Lerp")[0] == 5.0


@pytest.mark.parametrize("frame, value", [(0, 0.75), (1, 0.75), (2, 0.79), (5, 0.91), (10, 1.11), (11, 1.11),
                                          (12, 1.15)])
def test_increment_float_adds_a_step_per_frame_and_one_more_within_the_span(frame, value):
    # the corpus' widgets: start 0.75, step 0.04, from frame 2 for 8 frames
    assert CRIncrementFloat().run(None, 0.75, 0.04, 2, 8, frame)[0] == pytest.approx(value)


def test_increment_integer():
    assert [CRIncrementInteger().run(None, 768, 16, 0, 2, f)[0] for f in range(5)] == [784, 800, 816, 816, 832]


def test_inputs_and_outputs_as_the_pack_declares_them():
    registry = NodeRegistry()
    registry.load_package("nodes.packs")
    info = registry.object_info()
    frame = {"default": 0, "min": 0, "max": 9999, "step": 1}
    assert info["CR Gradient Float"]["input"]["required"] == {
        "start_value": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 9999.0, "step": 0.01}],
        "end_value": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 9999.0, "step": 0.01}],
        "start_frame": ["INT", frame], "frame_duration": ["INT", {**frame, "default": 1}],
        "current_frame": ["INT", frame], "gradient_profile": [["Lerp"]]}
    assert info["CR Increment Float"]["input"]["required"]["step"] == [
        "FLOAT", {"default": 0.1, "min": -9999.0, "max": 9999.0, "step": 0.001}]
    assert list(info["CR Increment Integer"]["input"]["required"]) == [
        "start_value", "step", "start_frame", "frame_duration", "current_frame"]
    for name, kind in (("CR Gradient Float", "FLOAT"), ("CR Gradient Integer", "INT"), ("CR Increment Float", "FLOAT"),
                       ("CR Increment Integer", "INT")):
        assert info[name]["output"] == [kind, "STRING"] and info[name]["output_name"] == [kind, "show_help"]
        assert info[name]["output_node"] == name.startswith("CR Increment")
