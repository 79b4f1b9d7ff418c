"""Mask nodes (ComfyUI's comfy_extras/nodes_mask.py): make, convert, crop, combine, feather, grow and threshold masks.

A MASK is [B, H, W] float in 0..1 (a single [H, W] mask is accepted wherever one is read); IMAGE is
[B, H, W, C]. SolidMask, the one node that allocates from constants, is held to the latent size cap
of nodes.latent (its `max_latent_pixels` setting, counted in pixels), at validation and at run time.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import IMAGE, MASK, Boolean, Choice, Float, Int, Link
from nodes.image_ops import MAX_RESOLUTION
from nodes.latent import MAX_LATENT_PIXELS_SETTING, max_latent_pixels
from nodes.latent_ops import repeat_to_batch

IMAGE_CHANNELS = ("red", "green", "blue", "alpha")
MASK_OPERATIONS = ("multiply", "add", "subtract", "and", "or", "xor")


class MaskTooLargeError(ValueError):
    """A requested mask exceeds the configured pixel cap."""


def mask_size_problem(width: int, height: int, cap: int) -> str | None:
    """A message when a width × height mask exceeds `cap` pixels, else None."""
    if width * height <= cap:
        return None
    return (f"mask too large: {width}×{height} = {width * height:,} pixels exceeds the limit of {cap:,} "
            f"(setting {MAX_LATENT_PIXELS_SETTING!r}); reduce width or height")


def as_mask_batch(mask: torch.Tensor) -> torch.Tensor:
    """Any [H, W], [B, H, W] or [B, 1, H, W] mask as [B, H, W] (a view where possible)."""
    return mask.reshape(-1, mask.shape[-2], mask.shape[-1])


@node("MaskToImage", display_name="Convert Mask to Image", category="mask", outputs=[Out(IMAGE)])
class MaskToImage:
    """The mask as a grey image: the same value in R, G and B."""

    mask = Link(MASK)

    def run(self, ctx: RunContext, mask: torch.Tensor) -> tuple:
        return (as_mask_batch(mask).unsqueeze(-1).expand(-1, -1, -1, 3),)


@node("ImageToMask", display_name="Convert Image to Mask", category="mask", outputs=[Out(MASK)])
class ImageToMask:
    """One channel of the images as a mask batch."""

    image = Link(IMAGE)
    channel = Choice(IMAGE_CHANNELS)

    def run(self, ctx: RunContext, image: torch.Tensor, channel: str) -> tuple:
        index = IMAGE_CHANNELS.index(channel)
        if index >= image.shape[-1]:
            raise ValueError(f"channel {channel!r}: the image has {image.shape[-1]} channels "
                             f"({', '.join(IMAGE_CHANNELS[:image.shape[-1]])}); pick one of those")
        return (image[..., index],)


@node("SolidMask", category="mask", outputs=[Out(MASK)])
class SolidMask:
    """A width × height mask filled with `value` (a batch of one)."""

    value = Float(1.0, min=0.0, max=1.0, step=0.01)
    width = Int(512, min=1, max=MAX_RESOLUTION, step=1)
    height = Int(512, min=1, max=MAX_RESOLUTION, step=1)

    def validate_inputs(self, paths: Any, width: int | None = None, height: int | None = None,
                        settings: dict[str, Any] | None = None, **_: Any) -> str | None:
        if width is None or height is None:
            return None
        return mask_size_problem(width, height, max_latent_pixels(settings))

    def run(self, ctx: RunContext, value: float, width: int, height: int) -> tuple:
        problem = mask_size_problem(width, height, max_latent_pixels(ctx.settings))
        if problem:
            raise MaskTooLargeError(problem)
        return (torch.full((1, height, width), value, dtype=torch.float32),)


@node("InvertMask", category="mask", outputs=[Out(MASK)])
class InvertMask:
    """1 − mask."""

    mask = Link(MASK)

    def run(self, ctx: RunContext, mask: torch.Tensor) -> tuple:
        return (1.0 - mask,)


@node("CropMask", category="mask", outputs=[Out(MASK)])
class CropMask:
    """The width × height region from (x, y), cut to what lies inside the mask."""

    mask = Link(MASK)
    x = Int(0, min=0, max=MAX_RESOLUTION, step=1)
    y = Int(0, min=0, max=MAX_RESOLUTION, step=1)
    width = Int(512, min=1, max=MAX_RESOLUTION, step=1)
    height = Int(512, min=1, max=MAX_RESOLUTION, step=1)

    def run(self, ctx: RunContext, mask: torch.Tensor, x: int, y: int, width: int, height: int) -> tuple:
        return (as_mask_batch(mask)[:, y:y + height, x:x + width],)


@node("MaskComposite", category="mask", outputs=[Out(MASK)])
class MaskComposite:
    """Combine source into destination at (x, y) with an arithmetic or logical operation; the result is clamped to 0..1.

    The logical operations read a value as set when it rounds to 1.
    """

    destination = Link(MASK)
    source = Link(MASK)
    x = Int(0, min=0, max=MAX_RESOLUTION, step=1)
    y = Int(0, min=0, max=MAX_RESOLUTION, step=1)
    operation = Choice(MASK_OPERATIONS)

    def run(self, ctx: RunContext, destination: torch.Tensor, source: torch.Tensor, x: int, y: int,
            operation: str) -> tuple:
        out = as_mask_batch(destination).clone()
        source = repeat_to_batch(as_mask_batch(source).to(out.dtype), out.shape[0])
        bottom, right = min(y + source.shape[1], out.shape[1]), min(x + source.shape[2], out.shape[2])
        if bottom > y and right > x:
            below = out[:, y:bottom, x:right]
            above = source[:, :bottom - y, :right - x]
            if operation == "multiply":
                combined = below * above
            elif operation == "add":
                combined = below + above
            elif operation == "subtract":
                combined = below - above
            else:
                logical = {"and": torch.logical_and, "or": torch.logical_or, "xor": torch.logical_xor}[operation]
                combined = logical(below.round().bool(), above.round().bool()).to(out.dtype)
            out[:, y:bottom, x:right] = combined
        return (out.clamp(0.0, 1.0),)


@node("FeatherMask", category="mask", outputs=[Out(MASK)])
class FeatherMask:
    """Fade the mask towards each edge: the outermost row or column is scaled by 1/n, rising to 1 at n in.

    ComfyUI's right and bottom loops index `-x` from x = 0, so they scale the first column (row)
    and skip the n-th from the edge; we feather the edge the input names.
    """

    mask = Link(MASK)
    left = Int(0, min=0, max=MAX_RESOLUTION, step=1)
    top = Int(0, min=0, max=MAX_RESOLUTION, step=1)
    right = Int(0, min=0, max=MAX_RESOLUTION, step=1)
    bottom = Int(0, min=0, max=MAX_RESOLUTION, step=1)

    def run(self, ctx: RunContext, mask: torch.Tensor, left: int, top: int, right: int, bottom: int) -> tuple:
        out = as_mask_batch(mask)
        height, width = out.shape[1], out.shape[2]
        rows = _ramp(height, min(top, height), min(bottom, height))
        cols = _ramp(width, min(left, width), min(right, width))
        return (out * rows[:, None].to(out.device, out.dtype) * cols[None, :].to(out.device, out.dtype),)


def _ramp(length: int, start: int, end: int) -> torch.Tensor:
    """Weights along one axis: (i+1)/start for the first `start` cells, mirrored for the last `end`."""
    weights = torch.ones(length, dtype=torch.float64)
    if start:
        weights[:start] *= torch.arange(1, start + 1, dtype=torch.float64) / start
    if end:
        weights[length - end:] *= torch.arange(end, 0, -1, dtype=torch.float64) / end
    return weights


@node("GrowMask", category="mask", outputs=[Out(MASK)])
class GrowMask:
    """Grow (expand > 0) or shrink (< 0) the mask by one pixel per step; tapered corners grow as a diamond.

    Each step is a grey dilation (erosion) with a 3×3 cross, or a full 3×3 square without tapering,
    as ComfyUI does with scipy; steps past the mask's own size change nothing and are skipped.
    """

    mask = Link(MASK)
    expand = Int(0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION, step=1)
    tapered_corners = Boolean(True)

    def run(self, ctx: RunContext, mask: torch.Tensor, expand: int, tapered_corners: bool) -> tuple:
        out = as_mask_batch(mask).clone()
        steps = min(abs(expand), out.shape[1] + out.shape[2])
        for _ in range(steps):
            ctx.check_interrupt()
            out = _morph_step(out, grow=expand > 0, square=not tapered_corners)
        return (out,)


def _morph_step(mask: torch.Tensor, grow: bool, square: bool) -> torch.Tensor:
    """One 3×3 max (grow) or min (shrink) filter step; cells beyond the border are ignored."""
    if square:
        pooled = F.max_pool2d((mask if grow else -mask).unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
        return pooled if grow else -pooled
    fill = float("-inf") if grow else float("inf")
    padded = F.pad(mask.unsqueeze(1), (1, 1, 1, 1), value=fill).squeeze(1)
    height, width = mask.shape[1], mask.shape[2]
    neighbours = torch.stack([mask, padded[:, :height, 1:width + 1], padded[:, 2:, 1:width + 1],
                              padded[:, 1:height + 1, :width], padded[:, 1:height + 1, 2:]])
    return neighbours.amax(0) if grow else neighbours.amin(0)


@node("ThresholdMask", category="mask", outputs=[Out(MASK)])
class ThresholdMask:
    """1 where the mask is above `value`, else 0."""

    mask = Link(MASK)
    value = Float(0.5, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, mask: torch.Tensor, value: float) -> tuple:
        return ((mask > value).to(torch.float32),)
