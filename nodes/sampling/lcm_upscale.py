"""LCM sampling that enlarges the latent between steps (ComfyUI's SamplerLCMUpscale).

Each step jumps to the prediction, resizes it by the next factor of a linear ramp from 1 to
`total_upscale`, and re-noises it to the next sigma. ComfyUI draws that noise with `randn_like` from
the process-wide generator, which its starting noise seeded with the seed and advanced by one draw of
the latent's shape: the same sequence is drawn here from a generator of our own, so the run is the one
ComfyUI gives on the CPU and the global RNG is left alone.
"""

from __future__ import annotations

import numpy as np
import torch

from nodes.resample import resize

from .noise import SEED_SPACE

UPSCALE_METHODS = ("bislerp", "nearest-exact", "bilinear", "area", "bicubic")


def upscale_factors(steps: int, total_upscale: float, upscale_steps: int | None) -> list[float]:
    """The resize factor after each of the first steps (relative to the starting size)."""
    if upscale_steps is None:
        count = max((steps + 1) // 2 + 1, 2)
    else:
        count = min(upscale_steps + 1, steps + 2)
    return [float(f) for f in np.linspace(1.0, total_upscale, count)[1:]]


def lcm_upscale(denoise, x, sigmas, seed, callback, total_upscale: float = 2.0, upscale_steps: int | None = None,
                upscale_method: str = "bislerp"):
    generator = torch.Generator(device="cpu").manual_seed(int(seed) % SEED_SPACE)
    torch.randn(tuple(x.shape), generator=generator, dtype=torch.float32)  # the starting noise's draw
    total = len(sigmas) - 1
    factors = upscale_factors(total, total_upscale, upscale_steps)
    height, width = x.shape[-2:]
    for i in range(total):
        denoised = denoise(x, sigmas[i].reshape(()))
        callback(i, total, x, denoised)
        x = denoised
        if i < len(factors):
            x = resize(x, int(round(width * factors[i])), int(round(height * factors[i])), upscale_method)
        if float(sigmas[i + 1]) > 0:
            noise = torch.randn(tuple(x.shape), generator=generator, dtype=torch.float32).to(x.device, x.dtype)
            x = x + sigmas[i + 1].to(x.device) * noise
    return x
