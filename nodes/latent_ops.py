"""Latent toolbox nodes that combine or transform latents in place: composite, blend, arithmetic, crop, flip, rotate.

Each keeps ComfyUI's class name, inputs and semantics (its nodes.py and comfy_extras/nodes_latent.py,
nodes_mask.py). Outputs are never larger than the first (destination) latent, so the latent size cap
(nodes.latent) already bounds them. Nodes return a new dict and never edit the tensors they receive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import LATENT, MASK, Boolean, Choice, Float, Int, Link
from nodes.image_ops import MAX_RESOLUTION
from nodes.resample import resize

ROTATIONS = ("none", "90 degrees", "180 degrees", "270 degrees")
FLIP_METHODS = ("x-axis: vertically", "y-axis: horizontally")


def repeat_to_batch(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """`tensor` with exactly `batch` items: the first ones, or the whole batch cycled (ComfyUI's rule)."""
    if tensor.shape[0] > batch:
        return tensor[:batch]
    if tensor.shape[0] < batch:
        repeats = -(-batch // tensor.shape[0])
        return tensor.repeat(repeats, *([1] * (tensor.dim() - 1)))[:batch]
    return tensor


def match_latent(target: torch.Tensor, latent: torch.Tensor, method: str = "bilinear") -> torch.Tensor:
    """`latent` resized (center-cropped) to `target`'s size and cycled to its batch, as ComfyUI's latent maths do."""
    if latent.shape[1:] != target.shape[1:]:
        latent = resize(latent, target.shape[3], target.shape[2], method, "center")
    return repeat_to_batch(latent, target.shape[0])


def composite_masked(destination: torch.Tensor, source: torch.Tensor, x: int, y: int, mask: torch.Tensor | None,
                     multiplier: int, resize_source: bool) -> torch.Tensor:
    """`source` pasted into a copy of `destination` [N, C, H, W] at pixel (x, y), weighted by `mask`.

    `multiplier` is pixels per tensor cell (8 for latents). The mask is stretched over the source;
    what falls outside the destination is dropped.
    """
    out = destination.clone()
    source = source.to(out.device, out.dtype)
    if resize_source:
        source = F.interpolate(source, size=out.shape[2:], mode="bilinear")
    source = repeat_to_batch(source, out.shape[0])
    left, top = x // multiplier, y // multiplier
    visible_height, visible_width = out.shape[2] - top, out.shape[3] - left
    if visible_height <= 0 or visible_width <= 0:
        return out
    if mask is None:
        weight = torch.ones_like(source)
    else:
        weight = mask.to(out.device, out.dtype).reshape(-1, 1, mask.shape[-2], mask.shape[-1])
        weight = repeat_to_batch(F.interpolate(weight, size=source.shape[2:], mode="bilinear"), source.shape[0])
    weight = weight[:, :, :visible_height, :visible_width]
    pasted = source[:, :, :visible_height, :visible_width]
    bottom, right = top + pasted.shape[2], left + pasted.shape[3]
    region = out[:, :, top:bottom, left:right]
    out[:, :, top:bottom, left:right] = weight * pasted + (1.0 - weight) * region
    return out


def _edge_ramp(length: int, feather: int, start: bool, end: bool) -> torch.Tensor:
    """Per-row (or column) weights: rising (t+1)/feather over `feather` cells from each feathered edge."""
    ramp = torch.ones(length)
    steps = torch.arange(1, min(feather, length) + 1, dtype=torch.float32) / feather
    if start:
        ramp[:len(steps)] *= steps
    if end:
        ramp[length - len(steps):] *= steps.flip(0)
    return ramp


@node("LatentComposite", display_name="Latent Composite", category="latent", outputs=[Out(LATENT)])
class LatentComposite:
    """Paste samples_from into samples_to at (x, y) pixels; `feather` softens the edges that lie inside samples_to."""

    samples_to = Link(LATENT)
    samples_from = Link(LATENT)
    x = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    y = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    feather = Int(0, min=0, max=MAX_RESOLUTION, step=8)

    def run(self, ctx: RunContext, samples_to: dict, samples_from: dict, x: int, y: int, feather: int) -> tuple:
        target = samples_to["samples"]
        out = target.clone()
        left, top, feather = x // 8, y // 8, feather // 8
        pasted = samples_from["samples"][:, :, :max(0, target.shape[2] - top), :max(0, target.shape[3] - left)]
        if pasted.shape[2] == 0 or pasted.shape[3] == 0:
            return ({**samples_to, "samples": out},)
        pasted = repeat_to_batch(pasted.to(out.dtype), out.shape[0])
        bottom, right = top + pasted.shape[2], left + pasted.shape[3]
        if feather == 0:
            out[:, :, top:bottom, left:right] = pasted
        else:
            # Only edges that fall inside samples_to are feathered, as in ComfyUI.
            rows = _edge_ramp(pasted.shape[2], feather, top != 0, bottom < target.shape[2])
            cols = _edge_ramp(pasted.shape[3], feather, left != 0, right < target.shape[3])
            weight = (rows[:, None] * cols[None, :]).to(out.device, out.dtype)
            out[:, :, top:bottom, left:right] = pasted * weight + out[:, :, top:bottom, left:right] * (1.0 - weight)
        return ({**samples_to, "samples": out},)


@node("LatentCompositeMasked", category="latent", outputs=[Out(LATENT)])
class LatentCompositeMasked:
    """Paste source into destination at (x, y) pixels through an optional mask; `resize_source` stretches it first."""

    destination = Link(LATENT)
    source = Link(LATENT)
    x = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    y = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    resize_source = Boolean(False)
    mask = Link(MASK, optional=True)

    def run(self, ctx: RunContext, destination: dict, source: dict, x: int, y: int, resize_source: bool,
            mask: torch.Tensor | None = None) -> tuple:
        samples = composite_masked(destination["samples"], source["samples"], x, y, mask, 8, resize_source)
        return ({**destination, "samples": samples},)


@node("LatentBlend", display_name="Latent Blend", category="_for_testing", outputs=[Out(LATENT)])
class LatentBlend:
    """samples1 × blend_factor + samples2 × (1 − blend_factor); samples2 is resized (bicubic) to samples1 if needed."""

    samples1 = Link(LATENT)
    samples2 = Link(LATENT)
    blend_factor = Float(0.5, min=0, max=1, step=0.01)

    def run(self, ctx: RunContext, samples1: dict, samples2: dict, blend_factor: float) -> tuple:
        first = samples1["samples"]
        second = match_latent(first, samples2["samples"], "bicubic")
        return ({**samples1, "samples": first * blend_factor + second * (1.0 - blend_factor)},)


@node("LatentAdd", category="latent/advanced", outputs=[Out(LATENT)])
class LatentAdd:
    """samples1 + samples2 (samples2 resized and batched to match samples1)."""

    samples1 = Link(LATENT)
    samples2 = Link(LATENT)

    def run(self, ctx: RunContext, samples1: dict, samples2: dict) -> tuple:
        first = samples1["samples"]
        return ({**samples1, "samples": first + match_latent(first, samples2["samples"])},)


@node("LatentSubtract", category="latent/advanced", outputs=[Out(LATENT)])
class LatentSubtract:
    """samples1 − samples2 (samples2 resized and batched to match samples1)."""

    samples1 = Link(LATENT)
    samples2 = Link(LATENT)

    def run(self, ctx: RunContext, samples1: dict, samples2: dict) -> tuple:
        first = samples1["samples"]
        return ({**samples1, "samples": first - match_latent(first, samples2["samples"])},)


@node("LatentMultiply", category="latent/advanced", outputs=[Out(LATENT)])
class LatentMultiply:
    """samples × multiplier."""

    samples = Link(LATENT)
    multiplier = Float(1.0, min=-10.0, max=10.0, step=0.01)

    def run(self, ctx: RunContext, samples: dict, multiplier: float) -> tuple:
        return ({**samples, "samples": samples["samples"] * multiplier},)


@node("LatentInterpolate", category="latent/advanced", outputs=[Out(LATENT)])
class LatentInterpolate:
    """Per-position interpolation of direction and magnitude over the channels: ratio 1 gives samples1.

    ComfyUI divides by norms of shape [B, H, W], which broadcasts correctly only for batch 1;
    we keep the channel axis so every batch size gets the per-position result.
    """

    samples1 = Link(LATENT)
    samples2 = Link(LATENT)
    ratio = Float(1.0, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, samples1: dict, samples2: dict, ratio: float) -> tuple:
        first = samples1["samples"]
        second = match_latent(first, samples2["samples"])
        norm1 = torch.linalg.vector_norm(first, dim=1, keepdim=True)
        norm2 = torch.linalg.vector_norm(second, dim=1, keepdim=True)
        mixed = torch.nan_to_num(first / norm1) * ratio + torch.nan_to_num(second / norm2) * (1.0 - ratio)
        direction = torch.nan_to_num(mixed / torch.linalg.vector_norm(mixed, dim=1, keepdim=True))
        return ({**samples1, "samples": direction * (norm1 * ratio + norm2 * (1.0 - ratio))},)


@node("LatentCrop", display_name="Crop Latent", category="latent/transform", outputs=[Out(LATENT)])
class LatentCrop:
    """Crop to width × height pixels from (x, y); the origin is moved in so that at least 64 pixels remain."""

    samples = Link(LATENT)
    width = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    height = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    x = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    y = Int(0, min=0, max=MAX_RESOLUTION, step=8)

    def run(self, ctx: RunContext, samples: dict, width: int, height: int, x: int, y: int) -> tuple:
        latent = samples["samples"]
        left = max(0, min(x // 8, latent.shape[3] - 8))
        top = max(0, min(y // 8, latent.shape[2] - 8))
        cropped = latent[:, :, top:top + height // 8, left:left + width // 8]
        return ({**samples, "samples": cropped},)


@node("LatentFlip", display_name="Flip Latent", category="latent/transform", outputs=[Out(LATENT)])
class LatentFlip:
    """Mirror latents: "x-axis" flips top to bottom, "y-axis" left to right."""

    samples = Link(LATENT)
    flip_method = Choice(FLIP_METHODS)

    def run(self, ctx: RunContext, samples: dict, flip_method: str) -> tuple:
        dim = 2 if flip_method.startswith("x") else 3
        return ({**samples, "samples": torch.flip(samples["samples"], dims=[dim])},)


@node("LatentRotate", display_name="Rotate Latent", category="latent/transform", outputs=[Out(LATENT)])
class LatentRotate:
    """Rotate latents clockwise by a quarter turn, a half turn or three quarters."""

    samples = Link(LATENT)
    rotation = Choice(ROTATIONS)

    def run(self, ctx: RunContext, samples: dict, rotation: str) -> tuple:
        return ({**samples, "samples": torch.rot90(samples["samples"], k=ROTATIONS.index(rotation), dims=[3, 2])},)
