"""Node pack for the queue panel's browser tests: a number that takes its time, and an output node; also a
number announced by a progress notice (as a one-time compile announces itself), for the CLI and editor tests.

Only widgets and a `*` link, so the editor and the server agree on every input (no model, no torch)."""

from __future__ import annotations

import time

from engine.context import RunContext
from engine.declare import NodeResult, Out, node
from engine.events import PROGRESS
from engine.types import Float, Int, Link, String

COMPILE_NOTICE = "compiling UNet for this CPU, one-time, a few minutes"  # what nodes/models/compiled.py says


@node("SlowNumber", category="toy/debug", outputs=[Out("INT", "value")])
class SlowNumber:
    """`value` after `steps` steps of `delay` seconds, reporting progress (so it can be interrupted)."""

    value = Int(0, min=-1_000_000, max=1_000_000)
    steps = Int(10, min=1, max=10_000)
    delay = Float(0.01, min=0.0, max=10.0, step=0.01)

    def run(self, ctx: RunContext, value, steps, delay):
        for step in range(steps):
            time.sleep(delay)
            ctx.progress(step + 1, steps)
        return (value,)


@node("NoticeNumber", category="toy/debug", outputs=[Out("INT", "value")])
class NoticeNumber:
    """`value`, after a progress event that carries `text`: a notice, not a step count."""

    value = Int(0, min=-1_000_000, max=1_000_000)
    text = String(COMPILE_NOTICE)

    def run(self, ctx: RunContext, value, text):
        ctx.emit(PROGRESS, {"value": 0, "max": 1, "node": ctx.node_id, "prompt_id": ctx.prompt_id, "text": text})
        return (value,)


@node("ShowValue", category="toy/output", output_node=True)
class ShowValue:
    """Output node: the value it receives, as UI output."""

    value = Link("*")

    def run(self, ctx: RunContext, value):
        return NodeResult(ui={"values": [value]})
