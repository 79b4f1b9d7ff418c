"""The conditioning toolbox: average, concatenate, and say where (area as a fraction of the image,
mask), how strongly and when (part of the schedule) an entry applies. As ComfyUI's nodes of the
same names; the sampler reads what they set (nodes.conditioning.regions)."""

from __future__ import annotations

import logging

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import CONDITIONING, MASK, Choice, Float, Link
from nodes.conditioning.value import Conditioning

log = logging.getLogger(__name__)


def _first(conditioning_from: Conditioning, node_name: str):
    if len(conditioning_from) > 1:
        log.warning("%s: conditioning_from has %d entries; only the first is used", node_name, len(conditioning_from))
    return conditioning_from[0]


@node("ConditioningAverage", display_name="ConditioningAverage", category="conditioning",
      outputs=[Out(CONDITIONING, "CONDITIONING")], legacy_names=("ConditioningAverage ",))
class ConditioningAverage:
    """Blends each entry's prompt tokens (and pooled output) with the first of `conditioning_from`:
    `conditioning_to_strength` of the first, the rest of the second (cut or zero-padded to length)."""

    # ComfyUI's display name is the class name: its display-name table spells the key "ConditioningAverage ",
    # the class name its early releases saved in workflows (three of cubiq's shared workflows use it).
    conditioning_to = Link(CONDITIONING)
    conditioning_from = Link(CONDITIONING)
    conditioning_to_strength = Float(1.0, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, conditioning_to: Conditioning, conditioning_from: Conditioning,
            conditioning_to_strength: float) -> tuple:
        source = _first(conditioning_from, "ConditioningAverage")
        w = conditioning_to_strength
        out = []
        for entry in conditioning_to:
            other = source.embeds[:, :entry.embeds.shape[1]]
            if other.shape[1] < entry.embeds.shape[1]:
                pad = torch.zeros((1, entry.embeds.shape[1] - other.shape[1], entry.embeds.shape[2]))
                other = torch.cat([other, pad.to(other.dtype)], dim=1)
            pooled = entry.pooled if entry.pooled is not None else source.pooled
            if source.pooled is not None and pooled is not None:
                pooled = pooled * w + source.pooled * (1.0 - w)
            out.append(entry.with_(embeds=entry.embeds * w + other * (1.0 - w), pooled=pooled))
        return (tuple(out),)


@node("ConditioningConcat", display_name="Conditioning (Concat)", category="conditioning",
      outputs=[Out(CONDITIONING, "CONDITIONING")])
class ConditioningConcat:
    """Appends the first entry of `conditioning_from`'s tokens to each entry's tokens."""

    conditioning_to = Link(CONDITIONING)
    conditioning_from = Link(CONDITIONING)

    def run(self, ctx: RunContext, conditioning_to: Conditioning, conditioning_from: Conditioning) -> tuple:
        source = _first(conditioning_from, "ConditioningConcat").embeds
        return (tuple(e.with_(embeds=torch.cat([e.embeds, source.to(e.embeds.dtype)], dim=1))
                      for e in conditioning_to),)


@node("ConditioningSetAreaPercentage", display_name="Conditioning (Set Area with Percentage)",
      category="conditioning", outputs=[Out(CONDITIONING, "CONDITIONING")])
class ConditioningSetAreaPercentage:
    """Restricts a conditioning to a rectangle given in fractions of the image, with a strength."""

    conditioning = Link(CONDITIONING)
    width = Float(1.0, min=0, max=1.0, step=0.01)
    height = Float(1.0, min=0, max=1.0, step=0.01)
    x = Float(0, min=0, max=1.0, step=0.01)
    y = Float(0, min=0, max=1.0, step=0.01)
    strength = Float(1.0, min=0.0, max=10.0, step=0.01)

    def run(self, ctx: RunContext, conditioning: Conditioning, width: float, height: float, x: float, y: float,
            strength: float) -> tuple:
        return (tuple(e.with_(area=None, area_fraction=(height, width, y, x), strength=strength,
                              set_area_to_bounds=False) for e in conditioning),)


@node("ConditioningSetAreaStrength", category="conditioning", outputs=[Out(CONDITIONING, "CONDITIONING")])
class ConditioningSetAreaStrength:
    """Sets how strongly a conditioning counts where it overlaps others."""

    conditioning = Link(CONDITIONING)
    strength = Float(1.0, min=0.0, max=10.0, step=0.01)

    def run(self, ctx: RunContext, conditioning: Conditioning, strength: float) -> tuple:
        return (tuple(e.with_(strength=strength) for e in conditioning),)


@node("ConditioningSetMask", display_name="Conditioning (Set Mask)", category="conditioning",
      outputs=[Out(CONDITIONING, "CONDITIONING")])
class ConditioningSetMask:
    """Restricts a conditioning to a mask, weighted by `strength`; `mask bounds` also evaluates it only
    over the box around the mask (faster for small masks)."""

    conditioning = Link(CONDITIONING)
    mask = Link(MASK)
    strength = Float(1.0, min=0.0, max=10.0, step=0.01)
    set_cond_area = Choice(["default", "mask bounds"])

    def run(self, ctx: RunContext, conditioning: Conditioning, mask: torch.Tensor, strength: float,
            set_cond_area: str) -> tuple:
        if mask.ndim < 3:
            mask = mask.unsqueeze(0)
        return (tuple(e.with_(mask=mask, mask_strength=strength, set_area_to_bounds=set_cond_area != "default")
                      for e in conditioning),)


@node("ConditioningSetTimestepRange", category="advanced/conditioning", outputs=[Out(CONDITIONING, "CONDITIONING")])
class ConditioningSetTimestepRange:
    """Lets a conditioning act only from `start` to `end` of the schedule (0: first step, 1: last)."""

    conditioning = Link(CONDITIONING)
    start = Float(0.0, min=0.0, max=1.0, step=0.001)
    end = Float(1.0, min=0.0, max=1.0, step=0.001)

    def run(self, ctx: RunContext, conditioning: Conditioning, start: float, end: float) -> tuple:
        return (tuple(e.with_(start_percent=start, end_percent=end) for e in conditioning),)
