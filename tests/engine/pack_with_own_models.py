"""A third-party node pack with its own model kind, loader and sampler, for the tests that show a
pack takes part in worker affinity and in the reproducibility record through its declarations
alone. Loaded from an extension folder like any pack (the tests copy this file into one).
"""

from __future__ import annotations

import time

from engine.context import RunContext
from engine.declare import Out, Provenance, node
from engine.paths import ModelFiles
from engine.types import Choice, Int, Link


@node("PackLoader", category="pack", outputs=[Out("PACKMODEL", "model")])
class PackLoader:
    """Loads a file of the pack's own kind `pack_models` (its content is the model)."""

    model_name = Choice(ModelFiles("pack_models", (".bin",)))

    def run(self, ctx: RunContext, model_name: str) -> tuple:
        path = ctx.paths.model_path("pack_models", model_name)
        return (path.read_bytes(),)


@node("PackSampler", category="pack", output_node=True, outputs=[Out("INT", "value")],
      provenance=Provenance("samplers", ("seed", "steps")))
class PackSampler:
    """A sampler stand-in (0.1 s a step): the model's size plus seed and steps; records what made it."""

    model = Link("PACKMODEL")
    seed = Int(0, min=0, max=2**31)
    steps = Int(1, min=1, max=100)

    def run(self, ctx: RunContext, model: bytes, seed: int, steps: int) -> tuple:
        time.sleep(0.1 * steps)
        return (len(model) + seed + steps,)
