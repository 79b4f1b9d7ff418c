"""SDXL's size conditioning: the numbers that join the pooled prompt in the UNet's added embedding.

The base model takes (height, width, crop_h, crop_w, target_height, target_width); the refiner
takes (height, width, crop_h, crop_w, aesthetic_score). What ComfyUI does when a conditioning
leaves them unset, and we match: width and height are the latent's size in pixels, the target
size is that width and height, crops are 0, and the aesthetic score is 6 on the positive side
and 2.5 on the negative one (diffusers' img2img pipeline defaults too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

POSITIVE_AESTHETIC_SCORE = 6.0
NEGATIVE_AESTHETIC_SCORE = 2.5


@dataclass(frozen=True)
class SizeConditioning:
    """What CLIPTextEncodeSDXL / CLIPTextEncodeSDXLRefiner set on an entry; None: the default above."""

    width: int | None = None
    height: int | None = None
    crop_w: int = 0
    crop_h: int = 0
    target_width: int | None = None
    target_height: int | None = None
    aesthetic_score: float | None = None


def sdxl_time_ids(size_ids: int, size: SizeConditioning | None, height: int, width: int,
                  negative: bool = False) -> torch.Tensor:
    """[1, size_ids] float32: 6 ids for the base model, 5 for the refiner (see the module docstring).

    `height`/`width` are the sampled latent's size in pixels, used where `size` sets none.
    """
    size = size or SizeConditioning()
    w = width if size.width is None else size.width
    h = height if size.height is None else size.height
    if size_ids == 5:
        default_score = NEGATIVE_AESTHETIC_SCORE if negative else POSITIVE_AESTHETIC_SCORE
        score = default_score if size.aesthetic_score is None else size.aesthetic_score
        ids = [h, w, size.crop_h, size.crop_w, score]
    elif size_ids == 6:
        target_w = w if size.target_width is None else size.target_width
        target_h = h if size.target_height is None else size.target_height
        ids = [h, w, size.crop_h, size.crop_w, target_h, target_w]
    else:
        raise ValueError(f"no SDXL size conditioning with {size_ids} numbers")
    return torch.tensor([ids], dtype=torch.float32)
