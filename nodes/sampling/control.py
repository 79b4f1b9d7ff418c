"""ControlNet residuals for one UNet call: each applied ControlNet whose part of the schedule covers
the current sigma runs on the same input, and their outputs are summed (ComfyUI chains them so).

An applied control is any object with `net` (a diffusers ControlNetModel), `hint` [B, C, H, W]
in 0..1, `strength`, `start_percent` and `end_percent` (nodes.conditioning.value.AppliedControl).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from nodes.resample import resize

from .schedule import ModelSampling

LATENT_TO_PIXELS = 8
Residuals = tuple[list[torch.Tensor], torch.Tensor]


def percent_to_sigma(model_sampling: ModelSampling, percent: float) -> float:
    """The sigma at a fraction of the schedule, as ComfyUI maps start/end percent (0 → ∞, 1 → 0)."""
    if percent <= 0.0:
        return math.inf
    if percent >= 1.0:
        return 0.0
    return float(model_sampling.sigma((1.0 - percent) * 999.0))


def is_active(control: Any, sigma: float, model_sampling: ModelSampling) -> bool:
    return (percent_to_sigma(model_sampling, control.end_percent) <= sigma
            <= percent_to_sigma(model_sampling, control.start_percent))


def hint_for(hint: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The hint at the latent's pixel size (nearest-exact after a centre crop, as ComfyUI resizes it)
    and repeated to its batch."""
    height, width = x.shape[2] * LATENT_TO_PIXELS, x.shape[3] * LATENT_TO_PIXELS
    if tuple(hint.shape[2:]) != (height, width):
        hint = resize(hint.float(), width, height, "nearest-exact", "center")
    if hint.shape[0] != x.shape[0]:
        hint = hint.repeat(math.ceil(x.shape[0] / hint.shape[0]), 1, 1, 1)[:x.shape[0]]
    return hint


def control_residuals(controls: Sequence[Any], x_in: torch.Tensor, timestep: torch.Tensor, sigma: float,
                      embeds: torch.Tensor, added: dict[str, torch.Tensor],
                      model_sampling: ModelSampling) -> Residuals | None:
    """The summed (down, mid) residuals of the controls active at `sigma`; None when none is."""
    total: Residuals | None = None
    for control in controls:
        if not is_active(control, sigma, model_sampling):
            continue
        param = next(control.net.parameters())
        kwargs = {"added_cond_kwargs": {k: v.to(param.device, param.dtype) for k, v in added.items()}} if added else {}
        down, mid = control.net(
            x_in.to(param.device, param.dtype), timestep.to(param.device).expand(x_in.shape[0]),
            encoder_hidden_states=embeds.to(param.device, param.dtype),
            controlnet_cond=hint_for(control.hint, x_in).to(param.device, param.dtype),
            conditioning_scale=float(control.strength), return_dict=False, **kwargs)
        total = (list(down), mid) if total is None else (
            [a + b for a, b in zip(total[0], down)], total[1] + mid)
    return total


def batched_residuals(parts: list[Residuals | None]) -> Residuals | None:
    """Per-cond residuals joined along the batch, zeros for a cond without active control."""
    present = next((p for p in parts if p is not None), None)
    if present is None:
        return None
    filled = [p if p is not None else ([torch.zeros_like(t) for t in present[0]], torch.zeros_like(present[1]))
              for p in parts]
    down = [torch.cat([p[0][i] for p in filled]) for i in range(len(present[0]))]
    return down, torch.cat([p[1] for p in filled])
