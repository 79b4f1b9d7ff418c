"""ComfyUI's sampler names, what runs behind each, and the one entry point that runs them.

Where each sampler's update rule comes from:
- diffusers: a diffusers scheduler class driven on our sigmas (`diffusers_steps`): euler, ddim,
  euler_ancestral, dpmpp_2m, uni_pc, uni_pc_bh2.
- k-diffusion: a loop of our own (`k_steps`), where diffusers cannot follow an
  arbitrary schedule or does something else than ComfyUI: heun, dpm_2, dpm_2_ancestral
  (diffusers interleaves their two stages into its own schedule and always ends
  with a first-order step), lms (diffusers integrates the last step to sigma 0;
  ComfyUI returns the prediction; diffusers also needs scipy), lcm and ddpm
  (diffusers' classes step between integer training timesteps), deis (diffusers'
  DEIS is a different variant).
- `sde_steps`: dpmpp_sde, dpmpp_2m_sde and dpmpp_3m_sde, whose noise comes from a torchsde
  Brownian tree seeded as ComfyUI seeds it (diffusers' multistep class draws plain randn).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import diffusers_steps, k_steps, sde_steps
from .cfg import Denoiser

Callback = Callable[[int, int, torch.Tensor, torch.Tensor], None]
SamplerFn = Callable[[Denoiser, torch.Tensor, torch.Tensor, int, Callback], torch.Tensor]


@dataclass(frozen=True)
class SamplerInfo:
    """What a sampler name means here.

    `discard_penultimate_sigma`: KSampler builds one step more and drops the
    second-to-last sigma (ComfyUI does this for dpm_2, dpm_2_ancestral and uni_pc).
    `random_inpaint_noise`: the kept region of an inpaint is re-noised with separate
    noise seeded from seed + 1 instead of the initial noise (ComfyUI's `ddim`).
    """

    name: str
    run: SamplerFn
    discard_penultimate_sigma: bool = False
    random_inpaint_noise: bool = False


SAMPLERS: dict[str, SamplerInfo] = {
    info.name: info
    for info in (
        SamplerInfo("euler", diffusers_steps.euler),
        SamplerInfo("euler_ancestral", diffusers_steps.euler_ancestral),
        SamplerInfo("heun", k_steps.heun),
        SamplerInfo("dpm_2", k_steps.dpm_2, discard_penultimate_sigma=True),
        SamplerInfo("dpm_2_ancestral", k_steps.dpm_2_ancestral, discard_penultimate_sigma=True),
        SamplerInfo("lms", k_steps.lms),
        # ComfyUI's *_gpu variants grow the Brownian tree on the latent's device instead of the CPU:
        # the same numbers when the latent is on the CPU; our tree always lives there.
        SamplerInfo("dpmpp_sde", sde_steps.dpmpp_sde),
        SamplerInfo("dpmpp_sde_gpu", sde_steps.dpmpp_sde),
        SamplerInfo("dpmpp_2m", diffusers_steps.dpmpp_2m),
        SamplerInfo("dpmpp_2m_sde", sde_steps.dpmpp_2m_sde),
        SamplerInfo("dpmpp_2m_sde_gpu", sde_steps.dpmpp_2m_sde),
        SamplerInfo("dpmpp_3m_sde", sde_steps.dpmpp_3m_sde),
        SamplerInfo("dpmpp_3m_sde_gpu", sde_steps.dpmpp_3m_sde),
        SamplerInfo("ddpm", k_steps.ddpm),
        SamplerInfo("lcm", k_steps.lcm),
        SamplerInfo("deis", k_steps.deis),
        # ComfyUI's "ddim" is Euler (deterministic DDIM is the same update in sigma form).
        SamplerInfo("ddim", diffusers_steps.euler, random_inpaint_noise=True),
        SamplerInfo("uni_pc", diffusers_steps.uni_pc, discard_penultimate_sigma=True),
        SamplerInfo("uni_pc_bh2", diffusers_steps.uni_pc_bh2, discard_penultimate_sigma=True),
    )
}
SAMPLER_NAMES = tuple(SAMPLERS)


def sampler_info(name: str) -> SamplerInfo:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLER_NAMES)}")
    return SAMPLERS[name]


def _no_callback(i: int, total: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
    return None


@torch.no_grad()
def sample(
    sampler_name: str,
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    seed: int,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Run a sampler from x (the latent at noise level sigmas[0], k-diffusion form) down the schedule.

    `callback(step, total, x, denoised)` runs once per step before the update; an
    exception raised there (an interrupt) propagates out of here unchanged.
    """
    info = sampler_info(sampler_name)
    sigmas = sigmas.detach().float().cpu()
    if len(sigmas) <= 1:
        return x
    return info.run(denoise, x.float(), sigmas, int(seed), callback or _no_callback)
