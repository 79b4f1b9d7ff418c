"""Node pack for bench/scale.py: a checkpoint "loader" that takes time, and a job that sleeps or spins.

Loaded by every worker from this folder (an extension folder of its own, so the benchmark
scripts next to it are not taken for node packs).
"""

from __future__ import annotations

import time

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import Choice, Float, Int, Link, String


@node("ScaleLoader", category="bench", outputs=[Out("SCALEMODEL", "model")])
class ScaleLoader:
    """Stands for a checkpoint load: `load_seconds` of sleep, counted by the worker (ckpt_name)."""

    ckpt_name = String("base.safetensors", loads="checkpoints")
    load_seconds = Float(0.3, min=0.0, max=60.0)

    def run(self, ctx: RunContext, ckpt_name, load_seconds):
        time.sleep(load_seconds)
        return (ckpt_name,)


def spin(count: int) -> int:
    """`count` rounds of pure-Python arithmetic: CPU work that holds the interpreter (and its GIL)."""
    total = 0
    for i in range(count):
        total = (total + i * i) % 1_000_003
    return total


@node("ScaleJob", category="bench", output_node=True, outputs=[Out("INT", "value")])
class ScaleJob:
    """A job in `steps` steps, reporting progress 0 at the start and after each step.

    `sleep` waits `seconds` (an I/O- or GPU-bound job: the worker's Python is idle); `cpu` does a
    fixed amount of Python work, `seconds × spins_per_second` rounds of `spin` (the benchmark
    measures the rate on one uncontended core), so CPU contention shows as longer jobs.
    """

    model = Link("SCALEMODEL")
    kind = Choice(["sleep", "cpu"])
    seconds = Float(0.5, min=0.0, max=600.0)
    steps = Int(10, min=1, max=10_000)
    seed = Int(0, min=0, max=2**31)
    spins_per_second = Int(0, min=0, max=10**12)

    def run(self, ctx: RunContext, model, kind, seconds, steps, seed, spins_per_second):
        ctx.progress(0, steps)
        for step in range(steps):
            if kind == "sleep":
                time.sleep(seconds / steps)
            else:
                spin(int(seconds * spins_per_second / steps))
            ctx.progress(step + 1, steps)
        return (seed,)
