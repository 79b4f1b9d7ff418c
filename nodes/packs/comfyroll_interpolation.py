"""Comfyroll Studio's per-frame number nodes for iterative animation workflows (Suzie1/ComfyUI_Comfyroll_CustomNodes,
animation_nodes/interpolation.py): gradients from a start to an end value over a span of frames, and increments."""

from __future__ import annotations

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import Choice, Float, Int

CATEGORY = "🧩 Comfyroll Studio/🎥 Animation/🔢 Interpolate"
HELP = "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes/wiki/Interpolation-Nodes"


def frame_input(default: int) -> Int:
    return Int(default, min=0, max=9999, step=1)


def gradient_value(start_value: float, end_value: float, start_frame: int, frame_duration: int,
                   current_frame: int, whole: bool = False) -> float:
    """The start value before the span, the end value after it, a straight line between; `whole` truncates
    the distance along towards zero (the integer node). A zero-length span at its own frame is at its start
    (the pack divides by zero)."""
    if current_frame < start_frame:
        return start_value
    if current_frame > start_frame + frame_duration:
        return end_value
    along = 0.0 if frame_duration == 0 else (current_frame - start_frame) * ((end_value - start_value) / frame_duration)
    return start_value + (int(along) if whole else along)


@node("CR Gradient Float", display_name="🔢 CR Gradient Float", category=CATEGORY,
      outputs=[Out("FLOAT", "FLOAT"), Out("STRING", "show_help")])
class CRGradientFloat:
    """The start value before `start_frame`, the end value after the span, a straight line between."""

    start_value = Float(1.0, min=0.0, max=9999.0, step=0.01)
    end_value = Float(1.0, min=0.0, max=9999.0, step=0.01)
    start_frame = frame_input(0)
    frame_duration = frame_input(1)
    current_frame = frame_input(0)
    gradient_profile = Choice(["Lerp"])

    def run(self, ctx: RunContext, start_value: float, end_value: float, start_frame: int, frame_duration: int,
            current_frame: int, gradient_profile: str) -> tuple:
        return (gradient_value(start_value, end_value, start_frame, frame_duration, current_frame),
                f"{HELP}#cr-gradient-float")


@node("CR Gradient Integer", display_name="🔢 CR Gradient Integer", category=CATEGORY,
      outputs=[Out("INT", "INT"), Out("STRING", "show_help")])
class CRGradientInteger:
    """CR Gradient Float on integers, the distance along truncated towards zero."""

    start_value = Int(1, min=0, max=9999, step=1)
    end_value = Int(1, min=0, max=9999, step=1)
    start_frame = frame_input(0)
    frame_duration = frame_input(1)
    current_frame = frame_input(0)
    gradient_profile = Choice(["Lerp"])

    def run(self, ctx: RunContext, start_value: int, end_value: int, start_frame: int, frame_duration: int,
            current_frame: int, gradient_profile: str) -> tuple:
        return (gradient_value(start_value, end_value, start_frame, frame_duration, current_frame, whole=True),
                f"{HELP}#cr-gradient-integer")


def incremented(start_value: float, step: float, start_frame: int, frame_duration: int, current_frame: int) -> float:
    """The pack's increment: from `start_frame` on, one step per frame past it, plus one more within the span."""
    if current_frame < start_frame:
        return start_value
    value = start_value + (current_frame - start_frame) * step
    return value + step if current_frame <= start_frame + frame_duration else value


@node("CR Increment Float", display_name="🔢 CR Increment Float", category=CATEGORY,
      outputs=[Out("FLOAT", "FLOAT"), Out("STRING", "show_help")], output_node=True)
class CRIncrementFloat:
    """A value that grows by `step` per frame from `start_frame`."""

    start_value = Float(1.0, min=0.0, max=9999.0, step=0.001)
    step = Float(0.1, min=-9999.0, max=9999.0, step=0.001)
    start_frame = frame_input(0)
    frame_duration = frame_input(1)
    current_frame = frame_input(0)

    def run(self, ctx: RunContext, start_value: float, step: float, start_frame: int, frame_duration: int,
            current_frame: int) -> tuple:
        return (incremented(start_value, step, start_frame, frame_duration, current_frame),
                f"{HELP}#cr-increment-float")


@node("CR Increment Integer", display_name="🔢 CR Increment Integer", category=CATEGORY,
      outputs=[Out("INT", "INT"), Out("STRING", "show_help")], output_node=True)
class CRIncrementInteger:
    """CR Increment Float on integers."""

    start_value = Int(1, min=0, max=9999, step=1)
    step = Int(1, min=-9999, max=9999, step=1)
    start_frame = frame_input(0)
    frame_duration = frame_input(1)
    current_frame = frame_input(0)

    def run(self, ctx: RunContext, start_value: int, step: int, start_frame: int, frame_duration: int,
            current_frame: int) -> tuple:
        return (int(incremented(start_value, step, start_frame, frame_duration, current_frame)),
                f"{HELP}#cr-increment-integer")
