"""Comfyroll Studio's animation utilities that iterative (one frame per queued run) workflows use: the current
frame counter and the simple value and text schedulers (Suzie1/ComfyUI_Comfyroll_CustomNodes,
nodes/nodes_animation_schedulers.py and animation_nodes/functions.py's keyframe_scheduler)."""

from __future__ import annotations

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import Choice, Int, String

ANIMATION = "🧩 Comfyroll Studio/🎥 Animation"
SCHEDULER_HELP = "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes/wiki/Scheduler-Nodes"


@node("CR Current Frame", display_name="🛠️ CR Current Frame", category=f"{ANIMATION}/🛠️ Utils",
      outputs=[Out("INT", "index")])
class CRCurrentFrame:
    """The frame index, passed on (and printed when asked): workflows increment it once per queued run."""

    index = Int(1, min=-10000, max=10000)
    print_to_console = Choice(["Yes", "No"])

    def run(self, ctx: RunContext, index: int, print_to_console: str) -> tuple:
        if print_to_console == "Yes":
            print(f"[Info] CR Current Frame:{index}", flush=True)
        return (index,)


def keyframe_value(schedule: str, current_frame: int, node_name: str) -> str:
    """The text after the comma of the schedule's line for `current_frame`: its own keyframe, else the last
    keyframe before it ("" when there is none); lines `frame, value` in frame order, as the pack reads them."""
    if schedule == "":
        raise ValueError(f"{node_name}: the schedule has no lines")
    previous = ""
    for line in schedule.split("\n"):
        if not line.strip():
            continue
        frame_text, separator, value = line.partition(",")
        try:
            frame = int(frame_text)
        except ValueError:
            frame = None
        if not separator or frame is None:
            raise ValueError(f"{node_name}: schedule line {line!r} is not 'frame_number, value'")
        if frame < current_frame:
            previous = value.lstrip()
            continue
        return value.lstrip() if frame == current_frame else previous
    return previous


@node("CR Simple Value Scheduler", display_name="📑 CR Simple Value Scheduler", category=f"{ANIMATION}/📑 Schedulers",
      outputs=[Out("INT", "INT"), Out("FLOAT", "FLOAT"), Out("STRING", "show_help")])
class CRSimpleValueScheduler:
    """The scheduled number for the frame: its integer part (the text before the '.') and its float value."""

    schedule = String("frame_number, value", multiline=True)
    current_frame = Int(0, min=0, max=9999, step=1)

    def run(self, ctx: RunContext, schedule: str, current_frame: int) -> tuple:
        value = keyframe_value(schedule, current_frame, "CR Simple Value Scheduler")
        if value == "":
            raise ValueError(f"CR Simple Value Scheduler: no value for frame {current_frame} "
                             "(simple schedules must start at frame 0)")
        try:
            return (int(value.split(".")[0]), float(value), f"{SCHEDULER_HELP}#cr-simple-value-scheduler")
        except ValueError:
            raise ValueError(f"CR Simple Value Scheduler: {value!r} at frame {current_frame} is not a number") from None


@node("CR Simple Text Scheduler", display_name="📑 CR Simple Text Scheduler", category=f"{ANIMATION}/📑 Schedulers",
      outputs=[Out("STRING", "STRING"), Out("STRING", "show_help")])
class CRSimpleTextScheduler:
    """The scheduled text for the frame."""

    schedule = String("frame_number, text", multiline=True)
    current_frame = Int(0, min=0, max=9999, step=1)

    def run(self, ctx: RunContext, schedule: str, current_frame: int) -> tuple:
        text = keyframe_value(schedule, current_frame, "CR Simple Text Scheduler")
        if text == "":
            raise ValueError(f"CR Simple Text Scheduler: no text for frame {current_frame} "
                             "(simple schedules must start at frame 0)")
        return (text, f"{SCHEDULER_HELP}#cr-simple-text-scheduler")
