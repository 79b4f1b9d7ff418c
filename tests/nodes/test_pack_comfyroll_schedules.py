"""Comfyroll's schedules by alias: CR Simple Schedule and CR Schedule Input Switch build them, CR Value Scheduler and
CR Text Scheduler read one alias's lines for the frame as the pack's keyframe_scheduler does."""

import pytest

from engine.registry import NodeRegistry
from nodes.packs.comfyroll_schedules import (
    CRScheduleInputSwitch,
    CRSimpleSchedule,
    CRTextScheduler,
    CRValueScheduler,
)

SCHEDULE = [("W", "0, 512"), ("T", "0, grey"), ("W", ""), ("W", "4, 768.75"), ("T", "2, blue")]


def test_simple_schedule_tags_its_non_blank_lines_and_needs_an_alias():
    schedule, help_url = CRSimpleSchedule().run(None, "0, a\n\n3, b", "Text", "T1", "CR")
    assert schedule == [("T1", "0, a"), ("T1", "3, b")] and help_url.endswith("#cr-simple-schedule")
    assert CRSimpleSchedule().run(None, "0, a", "Text", "", "CR")[0] == []


def test_schedule_input_switch_picks_by_number():
    assert CRScheduleInputSwitch().run(None, 1, ["a"], ["b"])[0] == ["a"]
    assert CRScheduleInputSwitch().run(None, 2, ["a"], ["b"])[0] == ["b"]


@pytest.mark.parametrize("frame, expected", [(0, (512, 512.0)), (3, (512, 512.0)), (4, (768, 768.75)),
                                             (9, (768, 768.75))])
def test_value_scheduler_reads_its_alias_lines(frame, expected):
    assert CRValueScheduler().run(None, "Schedule", frame, "W", 1.5, "CR", SCHEDULE)[:2] == expected


def test_value_scheduler_falls_back_to_the_default():
    assert CRValueScheduler().run(None, "Default Value", 4, "W", 2.5, "CR", SCHEDULE)[:2] == (2, 2.5)
    assert CRValueScheduler().run(None, "Schedule", 4, "none", -1.5, "CR", SCHEDULE)[:2] == (-1, -1.5)
    assert CRValueScheduler().run(None, "Schedule", 1, "W", 7.0, "CR", [("W", "3, 10")])[:2] == (7, 7.0)
    with pytest.raises(ValueError, match="'tall' at frame 0 is not a number"):
        CRValueScheduler().run(None, "Schedule", 0, "W", 1.0, "CR", [("W", "0, tall")])


def test_text_scheduler_reads_its_alias_lines_or_gives_the_default():
    assert CRTextScheduler().run(None, "Schedule", 1, "T", "default", "CR", SCHEDULE)[0] == "grey"
    assert CRTextScheduler().run(None, "Schedule", 5, "T", "default", "CR", SCHEDULE)[0] == "blue"
    assert CRTextScheduler().run(None, "Default Text", 5, "T", "default", "CR", SCHEDULE)[0] == "default"
    assert CRTextScheduler().run(None, "Schedule", 5, "T", "default", "CR", None)[0] == "default"


def test_inputs_as_the_pack_declares_them():
    registry = NodeRegistry()
    registry.load_package("nodes.packs")
    info = registry.object_info()
    assert list(info["CR Value Scheduler"]["input"]["required"]) == [
        "mode", "current_frame", "schedule_alias", "default_value", "schedule_format"]
    assert info["CR Value Scheduler"]["input"]["required"]["default_value"] == [
        "FLOAT", {"default": 1.0, "min": -9999.0, "max": 9999.0, "step": 0.01}]
    assert list(info["CR Text Scheduler"]["input"]["optional"]) == ["schedule"]
    assert info["CR Text Scheduler"]["input"]["required"]["mode"] == [["Default Text", "Schedule"]]
    assert info["CR Schedule Input Switch"]["input"]["required"]["Input"] == ["INT", {"default": 1, "min": 1, "max": 2}]
    assert info["CR Schedule Input Switch"]["output_node"] is True
    assert info["CR Simple Schedule"]["input"]["required"]["schedule"] == [
        "STRING", {"default": "frame_number, item_alias, [attr_value1, attr_value2]", "multiline": True}]
    assert info["CR Value Scheduler"]["output_name"] == ["INT", "FLOAT", "show_help"]
