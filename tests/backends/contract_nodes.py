"""Node pack for the backend contract tests, loaded from an extension folder by every worker.

A sampler stand-in that reports progress and JPEG previews. The checkpoint loader is the
benchmark's (bench/scale_pack: `ScaleLoader`, a `ckpt_name` and a load time), so affinity is
counted without a model: what a worker loaded is read back from its listing (`model_loads`).
"""

from __future__ import annotations

import io
import time

from PIL import Image

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import Float, Int, Link


@node("ToySampler", category="toy/sampling", outputs=[Out("INT", "value")])
class ToySampler:
    """`steps` steps of `delay` seconds with progress and a JPEG preview each; the value is seed + steps."""

    model = Link("SCALEMODEL")
    seed = Int(0, min=0, max=2**31)
    steps = Int(3, min=1, max=10_000)
    delay = Float(0.01, min=0.0, max=10.0)

    def run(self, ctx: RunContext, model, seed, steps, delay):
        for step in range(steps):
            time.sleep(delay)
            out = io.BytesIO()
            Image.new("RGB", (8, 8), (step * 30 % 256, seed % 256, 0)).save(out, "JPEG")
            ctx.preview("JPEG", out.getvalue())
            ctx.progress(step + 1, steps)
        return (seed + steps,)
