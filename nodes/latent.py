"""Latent nodes: empty latents, latent upscaling and the inpainting noise mask.

A LATENT is a dict `{"samples": [B, 4, H/8, W/8], "noise_mask"?: [B, 1, H, W], "batch_index"?: [...]}`.
Nodes return a new dict (never edit the one they received: outputs are cached and shared).

Latent size is capped by the `max_latent_pixels` setting (width × height × batch, in image pixels)
so that a typo such as batch_size 4096 at 16384² is refused with a message, not an allocation of
gigabytes. The cap is checked at run time, and also at validation when the sizes are constants.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import LATENT, MASK, Choice, Float, Int, Link
from engine.validate import SETTING_LIMITS
from nodes.image_ops import MAX_RESOLUTION
from nodes.resample import CROP_METHODS, LATENT_UPSCALE_METHODS, resize

MAX_LATENT_PIXELS_SETTING = "max_latent_pixels"
DEFAULT_MAX_LATENT_PIXELS = SETTING_LIMITS[MAX_LATENT_PIXELS_SETTING]


class LatentTooLargeError(ValueError):
    """A requested latent exceeds the configured size cap."""


def max_latent_pixels(settings: dict[str, Any] | None) -> int:
    return int((settings or {}).get(MAX_LATENT_PIXELS_SETTING, DEFAULT_MAX_LATENT_PIXELS))


def latent_size_problem(width: int, height: int, batch_size: int, cap: int, inputs: str) -> str | None:
    """A message naming `inputs` when width × height × batch_size (image pixels) exceeds `cap`, else None."""
    total = width * height * batch_size
    if total <= cap:
        return None
    return (f"latent too large: {width}×{height} pixels × batch {batch_size} = {total:,} pixels exceeds the "
            f"limit of {cap:,} (setting {MAX_LATENT_PIXELS_SETTING!r}); reduce {inputs}")


def check_latent_size(ctx: Any, width: int, height: int, batch_size: int, inputs: str) -> None:
    problem = latent_size_problem(width, height, batch_size, max_latent_pixels(getattr(ctx, "settings", None)),
                                  inputs)
    if problem:
        raise LatentTooLargeError(problem)


@node("EmptyLatentImage", display_name="Empty Latent Image", category="latent",
      outputs=[Out(LATENT, tooltip="The empty latent image batch.")])
class EmptyLatentImage:
    """Create a new batch of empty latent images to be denoised via sampling."""

    width = Int(512, min=16, max=MAX_RESOLUTION, step=8, tooltip="The width of the latent images in pixels.")
    height = Int(512, min=16, max=MAX_RESOLUTION, step=8, tooltip="The height of the latent images in pixels.")
    batch_size = Int(1, min=1, max=4096, tooltip="The number of latent images in the batch.")

    def validate_inputs(self, paths: Any, width: int | None = None, height: int | None = None,
                        batch_size: int | None = None, settings: dict[str, Any] | None = None) -> str | None:
        if width is None or height is None:
            return None
        return latent_size_problem(width, height, batch_size or 1, max_latent_pixels(settings),
                                   "width, height or batch_size")

    def run(self, ctx: RunContext, width: int, height: int, batch_size: int = 1) -> tuple:
        check_latent_size(ctx, width, height, batch_size, "width, height or batch_size")
        return ({"samples": torch.zeros([batch_size, 4, height // 8, width // 8])},)


def _upscale_target(samples: torch.Tensor, width: int, height: int) -> tuple[int, int]:
    """LatentUpscale's target in pixels: a 0 side follows the aspect ratio; each side is at least 64 (ComfyUI)."""
    if width == 0:
        height = max(64, height)
        width = max(64, round(samples.shape[3] * height / samples.shape[2]))
    elif height == 0:
        width = max(64, width)
        height = max(64, round(samples.shape[2] * width / samples.shape[3]))
    else:
        width, height = max(64, width), max(64, height)
    return width, height


@node("LatentUpscale", display_name="Upscale Latent", category="latent", outputs=[Out(LATENT)])
class LatentUpscale:
    """Resize latents to width × height pixels (÷8 in latent space); both 0 leave the latent as is."""

    samples = Link(LATENT)
    upscale_method = Choice(LATENT_UPSCALE_METHODS)
    width = Int(512, min=0, max=MAX_RESOLUTION, step=8)
    height = Int(512, min=0, max=MAX_RESOLUTION, step=8)
    crop = Choice(CROP_METHODS)

    def validate_inputs(self, paths: Any, width: int | None = None, height: int | None = None,
                        settings: dict[str, Any] | None = None, **_: Any) -> str | None:
        if not width or not height:  # a 0 side depends on the incoming latent's shape
            return None
        return latent_size_problem(max(64, width), max(64, height), 1, max_latent_pixels(settings),
                                   "width or height")

    def run(self, ctx: RunContext, samples: dict, upscale_method: str, width: int, height: int, crop: str) -> tuple:
        if width == 0 and height == 0:
            return (samples,)
        latent = samples["samples"]
        width, height = _upscale_target(latent, width, height)
        check_latent_size(ctx, width, height, latent.shape[0], "width or height")
        return ({**samples, "samples": resize(latent, width // 8, height // 8, upscale_method, crop)},)


@node("LatentUpscaleBy", display_name="Upscale Latent By", category="latent", outputs=[Out(LATENT)])
class LatentUpscaleBy:
    """Resize latents by a factor (each latent side rounded)."""

    samples = Link(LATENT)
    upscale_method = Choice(LATENT_UPSCALE_METHODS)
    scale_by = Float(1.5, min=0.01, max=8.0, step=0.01)

    def run(self, ctx: RunContext, samples: dict, upscale_method: str, scale_by: float) -> tuple:
        latent = samples["samples"]
        width = max(1, round(latent.shape[3] * scale_by))
        height = max(1, round(latent.shape[2] * scale_by))
        check_latent_size(ctx, width * 8, height * 8, latent.shape[0], "scale_by")
        return ({**samples, "samples": resize(latent, width, height, upscale_method)},)


@node("SetLatentNoiseMask", display_name="Set Latent Noise Mask", category="latent/inpaint", outputs=[Out(LATENT)])
class SetLatentNoiseMask:
    """Attach a mask to latents: sampling then only changes where the mask is 1 (inpainting)."""

    samples = Link(LATENT)
    mask = Link(MASK)

    def run(self, ctx: RunContext, samples: dict, mask: torch.Tensor) -> tuple:
        return ({**samples, "noise_mask": mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))},)
