"""Image nodes that make or transform IMAGE tensors ([B, H, W, C] float32 in 0..1, ComfyUI's layout)."""

from __future__ import annotations

from typing import Any

import torch

from engine.declare import Out, node
from engine.types import IMAGE, Int, Link

MAX_RESOLUTION = 16384


@node("EmptyImage", display_name="EmptyImage", category="image", outputs=[Out(IMAGE)])
class EmptyImage:
    """A batch of images filled with one colour (0xRRGGBB)."""

    width = Int(512, min=1, max=MAX_RESOLUTION, step=1)
    height = Int(512, min=1, max=MAX_RESOLUTION, step=1)
    batch_size = Int(1, min=1, max=4096)
    color = Int(0, min=0, max=0xFFFFFF, step=1)

    def run(self, ctx: Any, width: int, height: int, batch_size: int, color: int) -> tuple:
        rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=torch.float32) / 255.0
        return (rgb.expand(batch_size, height, width, 3).clone(),)


@node("ImageInvert", display_name="Invert Image", category="image", outputs=[Out(IMAGE)])
class ImageInvert:
    """1 - image, per channel."""

    image = Link(IMAGE)

    def run(self, ctx: Any, image: torch.Tensor) -> tuple:
        return (1.0 - image,)
