"""The `_O` nodes of omar92/ComfyUI-QualityOfLifeSuit_Omar92 (src/QualityOfLifeSuit_Omar92.py) that SD workflows use."""

from __future__ import annotations

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import IMAGE, LATENT, Choice, Float, Link, String
from nodes.image_resize import resize_image
from nodes.pixel_cap import check_image_size
from nodes.resample import resize

PACK = "O"   # the pack's own category root
MAX_RESOLUTION = 8192   # the pack's cap on each computed side
UPSCALE_METHODS = ("nearest-exact", "bilinear", "area")
CROP_METHODS = ("disabled", "center")
FACTOR = {"min": 0.0, "max": 10.0, "step": 0.28125}


def nearest_multiple_of_8(side: float) -> float:
    """The pack's `enforce_mul_of_64`: round to a multiple of 8, a remainder of 4 or more rounding up."""
    leftover = side % 8
    if leftover == 0:
        return side
    return side - leftover if leftover < 4 else side + 8 - leftover


@node("Text _O", category=f"{PACK}/utils", outputs=[Out("STRING")])
class TextO:
    """The text with one space appended (as the pack does, so joined prompts stay apart)."""

    text = String(None, multiline=True)   # type: ignore[arg-type]  # the pack declares no default

    def run(self, ctx: RunContext, text: str) -> tuple:
        return (text + " ",)


@node("LatentUpscaleFactor _O", category=f"{PACK}/latent", outputs=[Out(LATENT)])
class LatentUpscaleFactorO:
    """Latents resized by a factor per side, each latent side (floored) then rounded to a multiple of 8."""

    samples = Link(LATENT)
    upscale_method = Choice(UPSCALE_METHODS)
    WidthFactor = Float(1.25, **FACTOR)
    HeightFactor = Float(1.25, **FACTOR)
    crop = Choice(CROP_METHODS)

    def run(self, ctx: RunContext, samples: dict, upscale_method: str, WidthFactor: float, HeightFactor: float,
            crop: str) -> tuple:
        latent = samples["samples"]
        width = int(nearest_multiple_of_8(min(int(latent.shape[3] * WidthFactor), MAX_RESOLUTION)))
        height = int(nearest_multiple_of_8(min(int(latent.shape[2] * HeightFactor), MAX_RESOLUTION)))
        if width < 1 or height < 1:
            raise ValueError(f"LatentUpscaleFactor _O: the factors give a {width}×{height} latent "
                             f"(sides are rounded to multiples of 8 latent pixels)")
        check_image_size(ctx, width * 8, height * 8, latent.shape[0], "WidthFactor or HeightFactor")
        return ({**samples, "samples": resize(latent, width, height, upscale_method, crop)},)


@node("ImageScaleFactor _O", category=f"{PACK}/image", outputs=[Out(IMAGE)])
class ImageScaleFactorO:
    """Images resized by a factor per side, optionally rounded to multiples of 8 (`MulOf46`)."""

    image = Link(IMAGE)
    upscale_method = Choice(UPSCALE_METHODS)
    WidthFactor = Float(1.25, **FACTOR)
    HeightFactor = Float(1.25, **FACTOR)
    MulOf46 = Choice(["enabled", "disabled"], default="enabled")
    crop = Choice(CROP_METHODS)

    def run(self, ctx: RunContext, image: torch.Tensor, upscale_method: str, WidthFactor: float,
            HeightFactor: float, MulOf46: str, crop: str) -> tuple:
        width = min(WidthFactor * image.shape[2], MAX_RESOLUTION)
        height = min(HeightFactor * image.shape[1], MAX_RESOLUTION)
        if MulOf46 == "enabled":
            width, height = nearest_multiple_of_8(width), nearest_multiple_of_8(height)
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise ValueError(f"ImageScaleFactor _O: the factors give a {width}×{height} image")
        check_image_size(ctx, width, height, image.shape[0], "WidthFactor or HeightFactor")
        return (resize_image(image, width, height, upscale_method, crop),)
