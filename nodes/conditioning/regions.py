"""Where and when one conditioning entry acts while sampling: its area (in latent pixels or as a
fraction of the image), its mask, its strength and its part of the schedule, as ComfyUI's sampler
weighs each entry (`resolve_areas_and_cond_masks`, `get_area_and_mult`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nodes.conditioning.value import CondEntry
from nodes.sampling.control import percent_to_sigma
from nodes.sampling.schedule import ModelSampling

FEATHER = 8  # latent pixels over which an area's inner edges fade in (ComfyUI's `rr`)
MIN_BOUNDS = 8  # the smallest area a mask's bounds give (ComfyUI's)

Region = tuple[slice, slice, slice, slice]


def covers_whole(entry: CondEntry) -> bool:
    """Whether the entry acts everywhere, at full strength, at every step (the batched CFG path)."""
    return (entry.area is None and entry.area_fraction is None and entry.mask is None and entry.strength == 1.0
            and entry.start_percent <= 0.0 and entry.end_percent >= 1.0)


def latent_mask(entry: CondEntry, height: int, width: int) -> torch.Tensor | None:
    """The entry's mask [B, height, width], resized (bilinear) to the latent as ComfyUI does once per run."""
    if entry.mask is None:
        return None
    mask = entry.mask.float()
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if tuple(mask.shape[1:]) != (height, width):
        mask = F.interpolate(mask.unsqueeze(1), size=(height, width), mode="bilinear", align_corners=False).squeeze(1)
    return mask


def _mask_bounds(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(h, w, y, x) of the box holding the mask's non-zero values over the batch (at least 8×8)."""
    bounds = mask.abs().amax(dim=0)
    rows, cols = torch.nonzero(bounds.amax(dim=1)), torch.nonzero(bounds.amax(dim=0))
    if rows.numel() == 0:
        return (MIN_BOUNDS, MIN_BOUNDS, 0, 0)
    y0, y1, x0, x1 = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
    return (max(MIN_BOUNDS, y1 - y0 + 1), max(MIN_BOUNDS, x1 - x0 + 1), y0, x0)


def resolve_area(entry: CondEntry, height: int, width: int,
                 mask: torch.Tensor | None = None) -> tuple[int, int, int, int] | None:
    """The entry's area (h, w, y, x) in latent pixels, or None for the whole latent."""
    area = entry.area
    if entry.area_fraction is not None:
        fh, fw, fy, fx = entry.area_fraction
        area = (max(1, round(fh * height)), max(1, round(fw * width)), round(fy * height), round(fx * width))
    if mask is not None and entry.set_area_to_bounds:
        area = _mask_bounds(mask)
    return area


def is_active(entry: CondEntry, sigma: float, model_sampling: ModelSampling) -> bool:
    """Whether `sigma` lies in the entry's part of the schedule (ConditioningSetTimestepRange)."""
    if entry.start_percent > 0.0 and sigma > percent_to_sigma(model_sampling, entry.start_percent):
        return False
    if entry.end_percent < 1.0 and sigma < percent_to_sigma(model_sampling, entry.end_percent):
        return False
    return True


def entry_weight(entry: CondEntry, x: torch.Tensor, sigma: float,
                 model_sampling: ModelSampling) -> tuple[Region, torch.Tensor] | None:
    """Where the entry predicts (a region of `x`) and its weight there (broadcast to the region's shape),
    or None when it does not act at this sigma or its area lies outside the latent."""
    if not is_active(entry, sigma, model_sampling):
        return None
    height, width = x.shape[2], x.shape[3]
    mask = latent_mask(entry, height, width)
    area = resolve_area(entry, height, width, mask)
    h, w, y, x0 = area if area is not None else (height, width, 0, 0)
    h, w = min(h, height - y), min(w, width - x0)
    if h <= 0 or w <= 0:
        return None
    region = (slice(None), slice(None), slice(y, y + h), slice(x0, x0 + w))
    shape = (x.shape[0], x.shape[1], h, w)
    if mask is not None:
        part = mask[:x.shape[0], y:y + h, x0:x0 + w] * entry.mask_strength
        part = part.unsqueeze(1).repeat(x.shape[0] // part.shape[0], x.shape[1], 1, 1)
        return region, part.to(x.dtype) * entry.strength
    mult = torch.full(shape, float(entry.strength), dtype=x.dtype)
    if area is not None:
        # ComfyUI fades an area in over its first 8 pixels along every edge that is inside the image.
        for dim, (size, offset) in enumerate(((h, y), (w, x0)), start=2):
            full = x.shape[dim]
            for t in range(min(FEATHER, size)):  # (areas under 8 pixels would fail in ComfyUI)
                if offset != 0:
                    mult.narrow(dim, t, 1).mul_((t + 1) / FEATHER)
                if size + offset < full:
                    mult.narrow(dim, size - 1 - t, 1).mul_((t + 1) / FEATHER)
    return region, mult
