"""Comfyroll Studio's schedules by alias (Suzie1/ComfyUI_Comfyroll_CustomNodes, nodes/nodes_animation_schedules.py
and the schedulers that read them): a SCHEDULE is a list of (alias, "frame, value") lines; the value and text
schedulers read the lines of one alias for the current frame, as the pack's keyframe_scheduler does."""

from __future__ import annotations

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import Choice, Float, Int, Link, String
from nodes.packs.comfyroll_animation import ANIMATION, SCHEDULE, SCHEDULE_TYPES, SCHEDULER_HELP, keyframe_value

SCHEDULE_HELP = "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes/wiki/Schedule-Nodes"
Schedule = list[tuple[str, str]]


def alias_value(schedule: Schedule | None, alias: str, current_frame: int, node_name: str) -> str:
    """The value of `alias`'s lines for the frame ("" when it has none for it, or no lines at all)."""
    lines = [line for line_alias, line in schedule or [] if line_alias == alias and line.strip()]
    return keyframe_value("\n".join(lines), current_frame, node_name) if lines else ""


@node("CR Simple Schedule", display_name="📋 CR Simple Schedule", category=f"{ANIMATION}/📋 Schedule",
      outputs=[Out(SCHEDULE, "SCHEDULE"), Out("STRING", "show_help")])
class CRSimpleSchedule:
    """The schedule's non-blank lines under its alias (none without text or alias)."""

    schedule = String("frame_number, item_alias, [attr_value1, attr_value2]", multiline=True)
    schedule_type = Choice(SCHEDULE_TYPES)
    schedule_alias = String("")
    schedule_format = Choice(["CR", "Deforum"])

    def run(self, ctx: RunContext, schedule: str, schedule_type: str, schedule_alias: str,
            schedule_format: str) -> tuple:
        lines: Schedule = []
        if schedule != "" and schedule_alias != "":
            lines = [(schedule_alias, line) for line in schedule.split("\n") if line.strip()]
        return (lines, f"{SCHEDULE_HELP}#cr-simple-schedule")


@node("CR Schedule Input Switch", display_name="📋 CR Schedule Input Switch", category=f"{ANIMATION}/📋 Schedule",
      outputs=[Out(SCHEDULE, "SCHEDULE"), Out("STRING", "show_help")], output_node=True)
class CRScheduleInputSwitch:
    """The first schedule when Input is 1, else the second."""

    Input = Int(1, min=1, max=2)
    schedule1 = Link(SCHEDULE)
    schedule2 = Link(SCHEDULE)

    def run(self, ctx: RunContext, Input: int, schedule1: Schedule, schedule2: Schedule) -> tuple:
        return (schedule1 if Input == 1 else schedule2, f"{SCHEDULE_HELP}#cr-schedule-input-switch")


@node("CR Value Scheduler", display_name="📑 CR Value Scheduler", category=f"{ANIMATION}/📑 Schedulers",
      outputs=[Out("INT", "INT"), Out("FLOAT", "FLOAT"), Out("STRING", "show_help")])
class CRValueScheduler:
    """The alias's scheduled number for the frame (its integer part and value), or the default value when the
    mode is "Default Value" or the schedule has nothing for the frame yet."""

    mode = Choice(["Default Value", "Schedule"])
    current_frame = Int(0, min=0, max=9999, step=1)
    schedule_alias = String("")
    default_value = Float(1.0, min=-9999.0, max=9999.0, step=0.01)
    schedule_format = Choice(["CR", "Deforum"])
    schedule = Link(SCHEDULE, optional=True)

    def run(self, ctx: RunContext, mode: str, current_frame: int, schedule_alias: str, default_value: float,
            schedule_format: str, schedule: Schedule | None = None) -> tuple:
        help_url = f"{SCHEDULER_HELP}#cr-value-scheduler"
        value = "" if mode == "Default Value" else alias_value(schedule, schedule_alias, current_frame,
                                                                "CR Value Scheduler")
        if value == "":
            return (int(default_value), float(default_value), help_url)
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"CR Value Scheduler: {value!r} at frame {current_frame} is not a number") from None
        return (int(number), number, help_url)


@node("CR Text Scheduler", display_name="📑 CR Text Scheduler", category=f"{ANIMATION}/📑 Schedulers",
      outputs=[Out("STRING", "STRING"), Out("STRING", "show_help")])
class CRTextScheduler:
    """The alias's scheduled text for the frame, or the default text when the mode is "Default Text" or the
    schedule has nothing for the frame yet (where the pack fails on a misnamed variable)."""

    mode = Choice(["Default Text", "Schedule"])
    current_frame = Int(0, min=0, max=9999, step=1)
    schedule_alias = String("")
    default_text = String("default text")
    schedule_format = Choice(["CR", "Deforum"])
    schedule = Link(SCHEDULE, optional=True)

    def run(self, ctx: RunContext, mode: str, current_frame: int, schedule_alias: str, default_text: str,
            schedule_format: str, schedule: Schedule | None = None) -> tuple:
        text = "" if mode == "Default Text" else alias_value(schedule, schedule_alias, current_frame,
                                                              "CR Text Scheduler")
        return (text or default_text, f"{SCHEDULER_HELP}#cr-text-scheduler")
