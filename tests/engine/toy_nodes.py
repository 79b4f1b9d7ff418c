"""Small pure-Python node types for testing the engine without any model.

Nodes record each execution in `ctx.settings["trace"]` (a list the test owns), so tests can
see exactly what ran without global state.
"""

from __future__ import annotations

import hashlib
import time

from engine.declare import NodeResult, Out, node
from engine.types import Boolean, Choice, Float, Int, Link, String


def _trace(ctx, label: str) -> None:
    trace = ctx.settings.get("trace")
    if trace is not None:
        trace.append(label)


@node("Number", category="toy/math", outputs=[Out("INT", "value")])
class Number:
    """A constant integer."""

    value = Int(0, min=-1_000_000, max=1_000_000)

    def run(self, ctx, value):
        _trace(ctx, ctx.node_id)
        return (value,)


@node("Add", category="toy/math", outputs=[Out("INT", "sum")])
class Add:
    """a + b (+ c when connected)."""

    a = Link("INT")
    b = Link("INT")
    c = Link("INT", optional=True)

    def run(self, ctx, a, b, c):
        _trace(ctx, ctx.node_id)
        return (a + b + (c or 0),)


@node("Scale", category="toy/math", outputs=[Out("INT", "value"), Out("FLOAT", "ratio")])
class Scale:
    """value × factor, and the factor as a float."""

    value = Link("INT")
    factor = Int(2, min=0, max=100, step=1)
    offset = Float(0.0, min=-10.0, max=10.0, step=0.5, optional=True)

    def run(self, ctx, value, factor, offset):
        _trace(ctx, ctx.node_id)
        return (value * factor + int(offset), float(factor))


@node("Text", category="toy/text", outputs=[Out("STRING", "text")])
class Text:
    """A constant text, optionally upper-cased."""

    text = String("hello", multiline=True)
    shout = Boolean(False)
    style = Choice(["plain", "fancy"], optional=True)

    def run(self, ctx, text, shout, style):
        _trace(ctx, ctx.node_id)
        text = text.upper() if shout else text
        return (f"*{text}*" if style == "fancy" else text,)


@node("Show", category="toy/output", output_node=True, hidden=["prompt", "extra_pnginfo"])
class Show:
    """Output node: reports the value it receives as UI output."""

    value = Link("*")

    def run(self, ctx, value):
        _trace(ctx, ctx.node_id)
        return NodeResult(ui={"values": [value]})


@node("Fail", category="toy/debug", outputs=[Out("INT", "value")])
class Fail:
    """Raises when `fail` is true, else passes its value on."""

    value = Link("INT")
    fail = Boolean(True)

    def run(self, ctx, value, fail):
        _trace(ctx, ctx.node_id)
        if fail:
            raise RuntimeError("toy failure requested")
        return (value,)


@node("Slow", category="toy/debug", outputs=[Out("INT", "value")])
class Slow:
    """Counts `steps` steps of `delay` seconds each, reporting progress (interruptible)."""

    value = Link("INT")
    steps = Int(10, min=1, max=10_000)
    delay = Float(0.01, min=0.0, max=10.0)

    def run(self, ctx, value, steps, delay):
        _trace(ctx, ctx.node_id)
        for step in range(steps):
            time.sleep(delay)
            on_step = ctx.settings.get("on_step")
            if on_step:
                on_step(step)
            ctx.progress(step + 1, steps)
        return (value + steps,)


@node("ReadFile", category="toy/io", outputs=[Out("STRING", "text")])
class ReadFile:
    """Reads a text file from the input folder; re-runs when the file's content changes."""

    name = String("data.txt")

    def fingerprint(self, paths, name):
        return hashlib.sha256(paths.input_path(name).read_bytes()).hexdigest()

    def validate_inputs(self, paths, name):
        if not paths.input_path(name).is_file():
            return f"file {name!r} not found in the input folder"
        return None

    def run(self, ctx, name):
        _trace(ctx, ctx.node_id)
        return (ctx.paths.input_path(name).read_text(),)


@node("Clock", category="toy/io", outputs=[Out("FLOAT", "now")], always_rerun=True)
class Clock:
    """The current time: declared to re-run on every execution."""

    def run(self, ctx):
        _trace(ctx, ctx.node_id)
        return (time.time(),)


@node("Blob", category="toy/memory", outputs=[Out("BLOB", "data")])
class Blob:
    """`size` bytes of data (to exercise the cache's byte bound)."""

    size = Int(1024, min=0, max=10**9)
    fill = Int(0, min=0, max=255)

    def run(self, ctx, size, fill):
        _trace(ctx, ctx.node_id)
        return (bytes([fill]) * size,)


@node("BadReturn", category="toy/debug", outputs=[Out("INT", "a"), Out("INT", "b")])
class BadReturn:
    """Breaks its contract: returns one value though it declares two outputs."""

    value = Link("INT")

    def run(self, ctx, value):
        return (value,)


TOY_NODES = [Number, Add, Scale, Text, Show, Fail, Slow, ReadFile, Clock, Blob, BadReturn]
