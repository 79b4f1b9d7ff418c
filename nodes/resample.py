"""Resizing [N, C, H, W] tensors the way ComfyUI's upscale nodes do; shared by image and latent scaling.

One function, `resize`, serves ImageScale*, LatentUpscale* and anything else that scales: the
torch interpolation modes, `lanczos` through Pillow (8-bit, as ComfyUI does it) and `bislerp`
(spherical interpolation of latent vectors), with ComfyUI's optional centre crop to the target aspect.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGE_UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
LATENT_UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")
CROP_METHODS = ("disabled", "center")


def center_crop(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The centred part of `samples` with the aspect ratio of width × height (a view, nothing copied)."""
    old_height, old_width = samples.shape[-2], samples.shape[-1]
    old_aspect, new_aspect = old_width / old_height, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
    # ComfyUI crops `x` from both sides; keep at least one pixel where its rounding would leave none.
    return samples.narrow(-2, y, max(1, old_height - 2 * y)).narrow(-1, x, max(1, old_width - 2 * x))


def resize(samples: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """`samples` [N, C, H, W] resized to [N, C, height, width]; always a new tensor."""
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}×{height}: both sides must be at least 1")
    if crop not in CROP_METHODS:
        raise ValueError(f"unknown crop {crop!r} (expected one of {', '.join(CROP_METHODS)})")
    source = center_crop(samples, width, height) if crop == "center" else samples
    if method == "lanczos":
        return lanczos(source, width, height)
    if method == "bislerp":
        return bislerp(source, width, height)
    if method not in ("nearest-exact", "bilinear", "area", "bicubic"):
        raise ValueError(f"unknown upscale method {method!r}")
    return F.interpolate(source, size=(height, width), mode=method)


def lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pillow's Lanczos filter, per channel, on 8-bit values (ComfyUI quantises the same way, truncating)."""
    out = torch.empty((samples.shape[0], samples.shape[1], height, width), dtype=torch.float32)
    planes = np.clip(255.0 * samples.detach().to(torch.float32).cpu().numpy(), 0, 255).astype(np.uint8)
    for n in range(planes.shape[0]):
        for c in range(planes.shape[1]):
            plane = Image.fromarray(planes[n, c], mode="L").resize((width, height), resample=Image.Resampling.LANCZOS)
            out[n, c] = torch.from_numpy(np.asarray(plane, dtype=np.float32) / 255.0)
    return out.to(samples.device, samples.dtype)


def _slerp(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of the vectors in the last dimension, with linearly blended lengths.

    Matches ComfyUI: vectors of (almost) the same direction take `a`, opposite ones are lerped.
    """
    a_norm = a.norm(dim=-1, keepdim=True)
    b_norm = b.norm(dim=-1, keepdim=True)
    a_unit = torch.where(a_norm == 0, torch.zeros_like(a), a / a_norm)
    b_unit = torch.where(b_norm == 0, torch.zeros_like(b), b / b_norm)
    dot = (a_unit * b_unit).sum(-1, keepdim=True)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    result = (torch.sin((1.0 - ratio) * omega) / sin_omega) * a_unit + (torch.sin(ratio * omega) / sin_omega) * b_unit
    result = result * (a_norm * (1.0 - ratio) + b_norm * ratio)
    result = torch.where(dot < 1e-5 - 1, a * (1.0 - ratio) + b * ratio, result)
    return torch.where(dot > 1 - 1e-5, a, result)


def _source_positions(old: int, new: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of `new` output positions: lower and upper source index, and the fraction between them.

    Positions come from torch's own bilinear sampling (half-pixel centres, clamped at the edges), so
    bislerp samples exactly where `bilinear` would.
    """
    ramp = torch.arange(old, dtype=torch.float32).reshape(1, 1, 1, -1)
    position = F.interpolate(ramp, size=(1, new), mode="bilinear").flatten()
    upper_ramp = ramp + 1
    upper_ramp[..., -1] -= 1
    upper = F.interpolate(upper_ramp, size=(1, new), mode="bilinear").flatten().to(torch.int64)
    return position.to(torch.int64), upper, position - position.floor()


def _bislerp_axis(samples: torch.Tensor, new: int, dim: int) -> torch.Tensor:
    """Slerp the channel vectors of [N, C, H, W] along `dim` (2 for height, 3 for width) to length `new`."""
    lower, upper, ratio = _source_positions(samples.shape[dim], new)
    channels_last = samples.movedim(1, -1)  # [N, H, W, C]: each pixel's channels form one vector
    axis = dim - 1
    a = channels_last.index_select(axis, lower)
    b = channels_last.index_select(axis, upper)
    shape = [1, 1, 1, 1]
    shape[axis] = new
    ratio = ratio.reshape(shape).to(samples.dtype)
    return _slerp(a, b, ratio).movedim(-1, 1)


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bilinear resize that slerps latent vectors (first along the width, then the height), as ComfyUI's."""
    return _bislerp_axis(_bislerp_axis(samples, width, 3), height, 2).contiguous()
