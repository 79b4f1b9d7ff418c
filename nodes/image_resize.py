"""Image scaling nodes (ComfyUI's ImageScale, ImageScaleBy, ImageScaleToTotalPixels).

IMAGE tensors are [B, H, W, C]; they are moved to [B, C, H, W] for `nodes.resample.resize`,
the same function the latent upscale nodes use.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import IMAGE, Choice, Float, Int, Link
from nodes.image_ops import MAX_RESOLUTION
from nodes.pixel_cap import check_image_size, image_size_problem
from nodes.resample import CROP_METHODS, IMAGE_UPSCALE_METHODS, resize


def resize_image(image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """An IMAGE batch [B, H, W, C] resized to [B, height, width, C]."""
    return resize(image.movedim(-1, 1), width, height, method, crop).movedim(1, -1)


@node("ImageScale", display_name="Upscale Image", category="image/upscaling", outputs=[Out(IMAGE)])
class ImageScale:
    """Resize images to width × height; a side of 0 keeps the aspect ratio, both 0 leave the image as is."""

    image = Link(IMAGE)
    upscale_method = Choice(IMAGE_UPSCALE_METHODS)
    width = Int(512, min=0, max=MAX_RESOLUTION, step=1)
    height = Int(512, min=0, max=MAX_RESOLUTION, step=1)
    crop = Choice(CROP_METHODS)

    def validate_inputs(self, paths: Any, width: int | None = None, height: int | None = None,
                        settings: dict[str, Any] | None = None, **_: Any) -> str | None:
        if not width or not height:  # a 0 side depends on the incoming image's shape
            return None
        return image_size_problem(width, height, 1, settings, "width or height")

    def run(self, ctx: RunContext, image: torch.Tensor, upscale_method: str, width: int, height: int,
            crop: str) -> tuple:
        if width == 0 and height == 0:
            return (image,)
        old_height, old_width = image.shape[1], image.shape[2]
        if width == 0:
            width = max(1, round(old_width * height / old_height))
        elif height == 0:
            height = max(1, round(old_height * width / old_width))
        check_image_size(ctx, width, height, image.shape[0], "width or height")
        return (resize_image(image, width, height, upscale_method, crop),)


@node("ImageScaleBy", display_name="Upscale Image By", category="image/upscaling", outputs=[Out(IMAGE)])
class ImageScaleBy:
    """Resize images by a factor (each side rounded to whole pixels)."""

    image = Link(IMAGE)
    upscale_method = Choice(IMAGE_UPSCALE_METHODS)
    scale_by = Float(1.0, min=0.01, max=8.0, step=0.01)

    def run(self, ctx: RunContext, image: torch.Tensor, upscale_method: str, scale_by: float) -> tuple:
        width = max(1, round(image.shape[2] * scale_by))
        height = max(1, round(image.shape[1] * scale_by))
        check_image_size(ctx, width, height, image.shape[0], "scale_by")
        return (resize_image(image, width, height, upscale_method),)


@node("ImageScaleToTotalPixels", display_name="Scale Image to Total Pixels", category="image/upscaling",
      outputs=[Out(IMAGE)])
class ImageScaleToTotalPixels:
    """Resize images to about `megapixels` × 1024² pixels, keeping the aspect ratio.

    `resolution_steps` (newer ComfyUI) rounds each side to a multiple; it is optional so that
    workflows saved before it existed still load.
    """

    image = Link(IMAGE)
    upscale_method = Choice(IMAGE_UPSCALE_METHODS)
    megapixels = Float(1.0, min=0.01, max=16.0, step=0.01)
    resolution_steps = Int(1, min=1, max=256, optional=True)

    def run(self, ctx: RunContext, image: torch.Tensor, upscale_method: str, megapixels: float,
            resolution_steps: int | None = 1) -> tuple:
        steps = resolution_steps or 1
        old_height, old_width = image.shape[1], image.shape[2]
        scale_by = math.sqrt(megapixels * 1024 * 1024 / (old_width * old_height))
        width = max(1, round(old_width * scale_by / steps)) * steps
        height = max(1, round(old_height * scale_by / steps)) * steps
        check_image_size(ctx, int(width), int(height), image.shape[0], "megapixels")
        return (resize_image(image, int(width), int(height), upscale_method),)
