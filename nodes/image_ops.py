"""Image nodes that make or transform IMAGE tensors ([B, H, W, C] float32 in 0..1, ComfyUI's layout)."""

from __future__ import annotations

from typing import Any

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import IMAGE, MASK, Int, Link
from nodes.pixel_cap import check_image_size, image_size_problem

MAX_RESOLUTION = 16384


@node("EmptyImage", display_name="EmptyImage", category="image", outputs=[Out(IMAGE)])
class EmptyImage:
    """A batch of images filled with one colour (0xRRGGBB)."""

    width = Int(512, min=1, max=MAX_RESOLUTION, step=1)
    height = Int(512, min=1, max=MAX_RESOLUTION, step=1)
    batch_size = Int(1, min=1, max=4096)
    color = Int(0, min=0, max=0xFFFFFF, step=1)

    def validate_inputs(self, paths: Any, width: int | None = None, height: int | None = None,
                        batch_size: int | None = None, settings: dict[str, Any] | None = None,
                        **_: Any) -> str | None:
        if width is None or height is None:
            return None
        return image_size_problem(width, height, batch_size or 1, settings, "width, height or batch_size")

    def run(self, ctx: RunContext, width: int, height: int, batch_size: int, color: int) -> tuple:
        check_image_size(ctx, width, height, batch_size, "width, height or batch_size")
        rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=torch.float32) / 255.0
        return (rgb.expand(batch_size, height, width, 3).clone(),)


@node("ImageInvert", display_name="Invert Image", category="image", outputs=[Out(IMAGE)])
class ImageInvert:
    """1 - image, per channel."""

    image = Link(IMAGE)

    def run(self, ctx: RunContext, image: torch.Tensor) -> tuple:
        return (1.0 - image,)


def outpaint_feather(height: int, width: int, left: int, top: int, right: int, bottom: int,
                     feathering: int) -> torch.Tensor:
    """The mask over the original image area: 0 inside, rising quadratically to 1 at the padded edges.

    Distances follow ComfyUI exactly, including its off-by-one: a row's distance to the bottom edge
    is `height - row` (so the last row is 1 away) while its distance to the top edge is `row`.
    Feathering is skipped unless it fits twice into both sides, as in ComfyUI.
    """
    if feathering <= 0 or feathering * 2 >= height or feathering * 2 >= width:
        return torch.zeros((height, width), dtype=torch.float32)
    rows = torch.arange(height, dtype=torch.float64)[:, None]
    cols = torch.arange(width, dtype=torch.float64)[None, :]
    far_rows = torch.full_like(rows, float(height))
    far_cols = torch.full_like(cols, float(width))
    distance = torch.minimum(
        torch.minimum(rows if top else far_rows, height - rows if bottom else far_rows),
        torch.minimum(cols if left else far_cols, width - cols if right else far_cols))
    ramp = ((feathering - distance) / feathering) ** 2
    return torch.where(distance < feathering, ramp, torch.zeros_like(ramp)).to(torch.float32)


@node("ImagePadForOutpaint", display_name="Pad Image for Outpainting", category="image",
      outputs=[Out(IMAGE), Out(MASK)])
class ImagePadForOutpaint:
    """Pad images with grey (0.5) for outpainting; the mask is 1 over the padding, feathered into the image."""

    image = Link(IMAGE)
    left = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    top = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    right = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    bottom = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    feathering = Int(40, min=0, max=MAX_RESOLUTION, step=1)

    def run(self, ctx: RunContext, image: torch.Tensor, left: int, top: int, right: int, bottom: int,
            feathering: int) -> tuple:
        batch, height, width, channels = image.shape
        check_image_size(ctx, width + left + right, height + top + bottom, batch,
                         "left, top, right or bottom")
        padded = torch.full((batch, height + top + bottom, width + left + right, channels), 0.5, dtype=torch.float32)
        padded[:, top:top + height, left:left + width, :] = image
        mask = torch.ones((height + top + bottom, width + left + right), dtype=torch.float32)
        mask[top:top + height, left:left + width] = outpaint_feather(height, width, left, top, right, bottom,
                                                                     feathering)
        return (padded, mask)
