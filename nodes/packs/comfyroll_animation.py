"""Comfyroll Studio's animation utilities that iterative (one frame per queued run) workflows use: the current
frame counter, the simple value, text and prompt schedulers and the scheduled prompts' encoder
(Suzie1/ComfyUI_Comfyroll_CustomNodes: nodes/nodes_animation_schedulers.py, nodes/nodes_animation_prompt.py,
and animation_nodes/functions.py's keyframe_scheduler and prompt_scheduler)."""

from __future__ import annotations

from typing import Any, Iterable

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import CLIP, CONDITIONING, Choice, Float, Int, Link, String
from nodes.conditioning_nodes import CLIPTextEncode
from nodes.conditioning_ops import ConditioningAverage

ANIMATION = "🧩 Comfyroll Studio/🎥 Animation"
NO_DEFAULT: Any = None   # text widgets the pack declares without a default
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


def deforum_line(line: str) -> str:
    """A Deforum keyframe line (`"0": "prompt",`) in CR's `frame, prompt` form, as the pack converts it: every
    ':' becomes ',' (inside prompts too) and the trailing ',' is dropped."""
    return line.replace(":", ",").rstrip(",")


def prompt_keyframes(lines: Iterable[str], current_frame: int, node_name: str) -> tuple[str, str, int, int]:
    """(current prompt, next prompt, their keyframes) for the frame, as the pack's prompt_scheduler finds them:
    quotes around frame numbers and all quotes in prompts removed; past the last keyframe, current and next
    are both the last one. Blank lines are skipped."""
    previous_prompt, previous_frame = "", 0
    for line in lines:
        if not line.strip():
            continue
        frame_text, separator, prompt = line.partition(",")
        try:
            frame = int(frame_text.strip('"'))
        except ValueError:
            frame = None
        if not separator or frame is None:
            raise ValueError(f"{node_name}: keyframe line {line!r} is not 'frame_number, prompt'")
        prompt = prompt.lstrip().replace('"', "")
        if frame < current_frame:
            previous_prompt, previous_frame = prompt, frame
        elif frame == current_frame:
            return prompt, prompt, frame, frame
        else:
            return previous_prompt, prompt, previous_frame, frame
    return previous_prompt, previous_prompt, previous_frame, previous_frame


def interpolation_weight(current_frame: int, from_frame: int, to_frame: int) -> float:
    """The current keyframe's share: 1 on it, falling linearly to 0 at the next keyframe."""
    return 1.0 if from_frame == to_frame else (to_frame - current_frame) / (to_frame - from_frame)


@node("CR Simple Prompt Scheduler", display_name="📑 CR Simple Prompt Scheduler",
      category=f"{ANIMATION}/📑 Schedulers",
      outputs=[Out("STRING", "current_prompt"), Out("STRING", "next_prompt"), Out("FLOAT", "weight"),
               Out("STRING", "show_help")])
class CRSimplePromptScheduler:
    """The frame's prompt and the next keyframe's, with `weight` the share of the current one: 1 on a keyframe,
    falling linearly towards the next keyframe."""

    keyframe_list = String("frame_number, text", multiline=True)
    current_frame = Int(0, min=0, max=9999, step=1)
    keyframe_format = Choice(["CR", "Deforum"])

    def run(self, ctx: RunContext, keyframe_list: str, current_frame: int, keyframe_format: str) -> tuple:
        if keyframe_list == "":
            raise ValueError("CR Simple Prompt Scheduler: the keyframe list has no lines")
        lines = keyframe_list.split("\n")
        if keyframe_format == "Deforum":
            lines = [deforum_line(line) for line in lines]
        current, following, from_frame, to_frame = prompt_keyframes(lines, current_frame, "CR Simple Prompt Scheduler")
        if current == "":
            raise ValueError(f"CR Simple Prompt Scheduler: no prompt for frame {current_frame} "
                             "(simple schedules must start at frame 0)")
        weight = interpolation_weight(current_frame, from_frame, to_frame)
        return (current, following, weight, f"{SCHEDULER_HELP}#cr-simple-prompt-scheduler")


@node("CR Encode Scheduled Prompts", display_name="📝 CR Encode Scheduled Prompts", category=f"{ANIMATION}/📝 Prompt",
      outputs=[Out(CONDITIONING, "CONDITIONING"), Out("STRING", "show_help")])
class CREncodeScheduledPrompts:
    """Both prompts encoded and averaged: `weight` of the current one, the rest of the next (ConditioningAverage,
    pooled outputs too)."""

    clip = Link(CLIP)
    current_prompt = String(NO_DEFAULT, multiline=True)
    next_prompt = String(NO_DEFAULT, multiline=True)
    weight = Float(0.0, min=-9999.0, max=9999.0, step=0.01)

    def run(self, ctx: RunContext, clip: Any, current_prompt: str, next_prompt: str, weight: float) -> tuple:
        following = CLIPTextEncode().run(ctx, text=str(next_prompt), clip=clip)[0]
        current = CLIPTextEncode().run(ctx, text=str(current_prompt), clip=clip)[0]
        blended = ConditioningAverage().run(ctx, conditioning_to=current, conditioning_from=following,
                                            conditioning_to_strength=weight)[0]
        return (blended, "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes/wiki/Prompt-Nodes"
                         "#cr-encode-scheduled-prompts")


SCHEDULE = "SCHEDULE"   # the pack's schedule: a list of (alias, line) pairs
SCHEDULE_TYPES = ["Value", "Text", "Prompt", "Prompt Weight", "Model", "LoRA", "ControlNet", "Style", "Upscale",
                  "Camera", "Job"]


@node("CR Central Schedule", display_name="📋 CR Central Schedule", category=f"{ANIMATION}/📋 Schedule",
      outputs=[Out(SCHEDULE, "SCHEDULE"), Out("STRING", "show_text")])
class CRCentralSchedule:
    """Up to three schedules, each line tagged with its alias (a schedule without text or alias is left out),
    after those of a connected schedule; `show_text` lists them as `alias,text`."""

    schedule_1 = String("schedule", multiline=True)
    schedule_type1 = Choice(SCHEDULE_TYPES)
    schedule_alias1 = String("")
    schedule_2 = String("schedule", multiline=True)
    schedule_type2 = Choice(SCHEDULE_TYPES)
    schedule_alias2 = String("")
    schedule_3 = String("schedule", multiline=True)
    schedule_type3 = Choice(SCHEDULE_TYPES)
    schedule_alias3 = String("")
    schedule_format = Choice(["CR", "Deforum"])
    schedule = Link(SCHEDULE, optional=True)

    def run(self, ctx: RunContext, schedule_1: str, schedule_type1: str, schedule_alias1: str, schedule_2: str,
            schedule_type2: str, schedule_alias2: str, schedule_3: str, schedule_type3: str, schedule_alias3: str,
            schedule_format: str, schedule: list[tuple[str, str]] | None = None) -> tuple:
        lines = list(schedule or [])
        text = [f"{alias},{line}" for alias, line in lines]
        for body, alias in ((schedule_1, schedule_alias1), (schedule_2, schedule_alias2),
                            (schedule_3, schedule_alias3)):
            if body != "" and alias != "":
                lines += [(alias, line) for line in body.split("\n")]
                text.append(f"{alias},{body}\n")
        return (lines, "".join(text))


@node("CR Prompt Scheduler", display_name="📑 CR Prompt Scheduler", category=f"{ANIMATION}/📑 Schedulers",
      outputs=[Out("STRING", "current_prompt"), Out("STRING", "next_prompt"), Out("FLOAT", "weight"),
               Out("STRING", "show_help")])
class CRPromptScheduler:
    """The frame's prompt and the next keyframe's (from the keyframe list, or the schedule's lines of
    `schedule_alias`), each between `prepend_text, ` and `, append_text`; `weight` as the simple scheduler's,
    or 1 when `interpolate_prompt` is No. "Default Prompt" gives the default prompt, weight 1."""

    mode = Choice(["Default Prompt", "Keyframe List", "Schedule"])
    current_frame = Int(0, min=0, max=9999, step=1)
    default_prompt = String("default prompt")
    schedule_format = Choice(["CR", "Deforum"])
    interpolate_prompt = Choice(["Yes", "No"])
    schedule = Link(SCHEDULE, optional=True)
    # The pack's option is misspelt ("default prompt": ""), so the alias has no default.
    schedule_alias = String(NO_DEFAULT, optional=True)
    keyframe_list = String("keyframe list", multiline=True, optional=True)
    prepend_text = String("prepend text", multiline=True, optional=True)
    append_text = String("append text", multiline=True, optional=True)

    def run(self, ctx: RunContext, mode: str, current_frame: int, default_prompt: str, schedule_format: str,
            interpolate_prompt: str, schedule: list[tuple[str, str]] | None = None, schedule_alias: str = "",
            keyframe_list: str = "", prepend_text: str = "", append_text: str = "") -> tuple:
        help_url = f"{SCHEDULER_HELP}#cr-prompt-scheduler"
        if mode == "Default Prompt":
            return (default_prompt, default_prompt, 1.0, help_url)
        if mode == "Keyframe List":
            if keyframe_list == "":
                raise ValueError("CR Prompt Scheduler: the keyframe list is empty")
            lines = keyframe_list.split("\n")
            if schedule_format == "Deforum":
                lines = [deforum_line(line).lstrip() for line in lines]
        else:
            if schedule is None:
                raise ValueError("CR Prompt Scheduler: mode Schedule needs a schedule connected")
            # With Deforum, the pack converts every line of the schedule and files it under this alias.
            lines = [deforum_line(line) if schedule_format == "Deforum" else line
                     for alias, line in schedule if schedule_format == "Deforum" or alias == schedule_alias]
        current, following, from_frame, to_frame = prompt_keyframes(lines, current_frame, "CR Prompt Scheduler")
        if current == "":
            raise ValueError(f"CR Prompt Scheduler: no prompt for frame {current_frame} "
                             "(schedules should start at frame 0)")
        weight = 1.0 if interpolate_prompt == "No" else interpolation_weight(current_frame, from_frame, to_frame)
        return (f"{prepend_text}, {current}, {append_text}", f"{prepend_text}, {following}, {append_text}", weight,
                help_url)


SIMPLE_PROMPT_LIST = "SIMPLE_PROMPT_LIST"   # the legacy prompt stack: a list of prompts


@node("CR Simple Prompt List", display_name="CR Simple Prompt List (Legacy)", category=f"{ANIMATION}/💀 Legacy",
      outputs=[Out(SIMPLE_PROMPT_LIST, "SIMPLE_PROMPT_LIST"), Out("STRING", "show_help")])
class CRSimplePromptList:
    """A connected list's prompts, then this node's non-empty ones."""

    prompt_1 = String("prompt", multiline=True)
    prompt_2 = String("prompt", multiline=True)
    prompt_3 = String("prompt", multiline=True)
    prompt_4 = String("prompt", multiline=True)
    prompt_5 = String("prompt", multiline=True)
    simple_prompt_list = Link(SIMPLE_PROMPT_LIST, optional=True)

    def run(self, ctx: RunContext, prompt_1: str, prompt_2: str, prompt_3: str, prompt_4: str, prompt_5: str,
            simple_prompt_list: list[str] | None = None) -> tuple:
        prompts = list(simple_prompt_list or []) + [p for p in (prompt_1, prompt_2, prompt_3, prompt_4, prompt_5)
                                                    if p != ""]
        return (prompts, "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes/wiki/Prompt-Nodes"
                         "#cr-simple-prompt-list")


@node("CR Simple Prompt List Keyframes", display_name="CR Simple Prompt List Keyframes (Legacy)",
      category=f"{ANIMATION}/💀 Legacy", outputs=[Out("STRING", "keyframe_list"), Out("STRING", "show_help")])
class CRSimplePromptListKeyframes:
    """The prompts as Deforum keyframes `"frame": "prompt"` every `keyframe_interval` frames, the list repeated
    `loops` times; lines joined by ",\\n " as the pack joins them (the transition choices have one value)."""

    simple_prompt_list = Link(SIMPLE_PROMPT_LIST)
    keyframe_interval = Int(30, min=0, max=999, step=1)
    loops = Int(1, min=1, max=1000)
    transition_type = Choice(["Default"])
    transition_speed = Choice(["Default"])
    transition_profile = Choice(["Default"])
    keyframe_format = Choice(["Deforum"])

    def run(self, ctx: RunContext, simple_prompt_list: list[str], keyframe_interval: int, loops: int,
            transition_type: str, transition_speed: str, transition_profile: str, keyframe_format: str) -> tuple:
        prompts = [prompt for _ in range(loops) for prompt in simple_prompt_list]
        lines = [f'"{i * keyframe_interval}": "{prompt}"' for i, prompt in enumerate(prompts)]
        return (",\n ".join(lines), "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes/wiki/Prompt-Nodes"
                                     "#cr-simple-prompt-list-keyframes")
