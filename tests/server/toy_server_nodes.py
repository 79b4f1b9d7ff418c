"""Toy nodes for server tests: an image-writing output node, a node that emits previews, and an output
node whose UI result cannot be written as JSON.

They need no model and no torch: images are tiny PNGs made with Pillow.
"""

from __future__ import annotations

import io
import time

from PIL import Image

from engine.context import RunContext
from engine.declare import NodeResult, Out, node
from engine.types import Choice, Float, Int, Link, String


def png_bytes(color: int, size: int = 4) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (size, size), ((color >> 16) & 255, (color >> 8) & 255, color & 255, 128)).save(out, "PNG")
    return out.getvalue()


@node("SolidImage", category="toy/image", output_node=True, hidden=["prompt", "extra_pnginfo"])
class SolidImage:
    """Writes a small RGBA PNG of one colour to the output folder (never overwriting) and reports it."""

    color = Int(0x336699, min=0, max=0xFFFFFF)
    size = Int(4, min=1, max=64)
    filename_prefix = String("toy")
    value = Link("INT", optional=True)

    def run(self, ctx: RunContext, color, size, filename_prefix, value):
        folder = ctx.paths.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        counter = 1
        while True:
            name = f"{filename_prefix}_{counter:05}_.png"
            try:
                with open(folder / name, "xb") as handle:
                    handle.write(png_bytes(color, size))
                break
            except FileExistsError:
                counter += 1
        return NodeResult(ui={"images": [{"filename": name, "subfolder": "", "type": "output"}]})


@node("PreviewSteps", category="toy/debug", outputs=[Out("INT", "value")])
class PreviewSteps:
    """Counts `steps` steps, reporting progress and a PNG preview at each (like a sampler would)."""

    value = Link("INT")
    steps = Int(3, min=1, max=1000)
    delay = Float(0.0, min=0.0, max=10.0, optional=True)

    def run(self, ctx: RunContext, value, steps, delay):
        for step in range(steps):
            time.sleep(delay or 0.0)
            ctx.preview("PNG", png_bytes(step * 40))
            ctx.progress(step + 1, steps)
        return (value + steps,)


@node("UnstorableUI", category="toy/debug", output_node=True)
class UnstorableUI:
    """Output node whose UI result JSON cannot carry: a set (like a tensor there) or NaN."""

    value = Link("INT")
    holds = Choice(["set", "nan"])

    def run(self, ctx: RunContext, value, holds):
        return NodeResult(ui={"values": {value} if holds == "set" else [float("nan")]})


SERVER_TOY_NODES = [SolidImage, PreviewSteps, UnstorableUI]
