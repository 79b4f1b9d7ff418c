"""cubiq/ComfyUI_essentials' image nodes that SD workflows use (image.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import IMAGE, Choice, Int, Link
from nodes.pixel_cap import check_image_size
from nodes.resample import lanczos

MAX_RESOLUTION = 16384


def _fit(width: int, height: int, old_width: int, old_height: int, method: str) -> tuple[int, int, tuple, tuple]:
    """(resize width, height, (pad left, right, top, bottom), (crop x, y, x2, y2)) as the pack computes them."""
    pad = (0, 0, 0, 0)
    crop = (0, 0, 0, 0)
    if method in ("keep proportion", "pad"):
        if width == 0:   # the pack compares the *height* with the target height here; kept on purpose
            width = MAX_RESOLUTION if old_height < height else old_width
        if height == 0:
            height = MAX_RESOLUTION if old_width < width else old_height
        ratio = min(width / old_width, height / old_height)
        new_width, new_height = round(old_width * ratio), round(old_height * ratio)
        if method == "pad":
            left, top = (width - new_width) // 2, (height - new_height) // 2
            pad = (left, width - new_width - left, top, height - new_height - top)
        return new_width, new_height, pad, crop
    width, height = width or old_width, height or old_height
    if method.startswith("fill"):
        ratio = max(width / old_width, height / old_height)
        new_width, new_height = round(old_width * ratio), round(old_height * ratio)
        x, y = (new_width - width) // 2, (new_height - height) // 2
        x2, y2 = x + width, y + height
        x = max(0, x - max(0, x2 - new_width))
        y = max(0, y - max(0, y2 - new_height))
        return new_width, new_height, pad, (x, y, x2, y2)
    return width, height, pad, crop


def _applies(condition: str, old_width: int, old_height: int, width: int, height: int) -> bool:
    return ("always" in condition
            or (condition == "downscale if bigger" and (old_height > height or old_width > width))
            or (condition == "upscale if smaller" and (old_height < height or old_width < width))
            or ("bigger area" in condition and old_height * old_width > height * width)
            or ("smaller area" in condition and old_height * old_width < height * width))


@node("ImageResize+", display_name="🔧 Image Resize", category="essentials/image manipulation",
      outputs=[Out(IMAGE, "IMAGE"), Out("INT", "width"), Out("INT", "height")])
class ImageResizePlus:
    """Resize by stretching, keeping proportion, filling and cropping, or padding, when the condition
    holds; `multiple_of` trims the target, then center-crops the result, to multiples of it."""

    image = Link(IMAGE)
    width = Int(512, min=0, max=MAX_RESOLUTION, step=1)
    height = Int(512, min=0, max=MAX_RESOLUTION, step=1)
    interpolation = Choice(["nearest", "bilinear", "bicubic", "area", "nearest-exact", "lanczos"])
    method = Choice(["stretch", "keep proportion", "fill / crop", "pad"])
    condition = Choice(["always", "downscale if bigger", "upscale if smaller", "if bigger area", "if smaller area"])
    multiple_of = Int(0, min=0, max=512, step=1)

    def run(self, ctx: RunContext, image: torch.Tensor, width: int, height: int, interpolation: str, method: str,
            condition: str, multiple_of: int) -> tuple:
        old_height, old_width = image.shape[1], image.shape[2]
        if multiple_of > 1:
            width, height = width - width % multiple_of, height - height % multiple_of
        width, height, pad, (x, y, x2, y2) = _fit(width, height, old_width, old_height, method)
        if _applies(condition, old_width, old_height, width, height):
            check_image_size(ctx, width + pad[0] + pad[1], height + pad[2] + pad[3], image.shape[0], "width or height")
            out = image.permute(0, 3, 1, 2)
            if interpolation == "lanczos":
                out = lanczos(out, width, height)
            else:
                out = F.interpolate(out, size=(height, width), mode=interpolation)
            if method == "pad" and any(pad):
                out = F.pad(out, pad, value=0)
            out = out.permute(0, 2, 3, 1)
            if method.startswith("fill") and (x > 0 or y > 0 or x2 > 0 or y2 > 0):
                out = out[:, y:y2, x:x2, :]
        else:
            out = image
        if multiple_of > 1 and (out.shape[2] % multiple_of or out.shape[1] % multiple_of):
            h, w = out.shape[1], out.shape[2]
            x, y = (w % multiple_of) // 2, (h % multiple_of) // 2
            out = out[:, y:h - (h % multiple_of - y), x:w - (w % multiple_of - x), :]
        out = torch.clamp(out, 0, 1)
        return (out, out.shape[2], out.shape[1])
