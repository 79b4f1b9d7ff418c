"""KSampler's arithmetic: seeded noise, noise schedules, sampler algorithms and the model-side denoiser.

Torch-only and engine-free; node declarations wire it up elsewhere.
"""

from .cfg import Cond, Denoiser, EpsilonDenoiser, MaskedDenoiser, VDenoiser, latent_mask, unet_denoiser
from .noise import StepNoise, initial_noise, inpaint_noise
from .samplers import SAMPLER_NAMES, SAMPLERS, SamplerInfo, sample, sampler_info
from .schedule import (
    SCHEDULER_NAMES,
    ModelSampling,
    ksampler_sigmas,
    scheduler_sigmas,
    slice_steps,
)

__all__ = [
    "Cond", "Denoiser", "EpsilonDenoiser", "MaskedDenoiser", "VDenoiser", "latent_mask", "unet_denoiser",
    "StepNoise", "initial_noise", "inpaint_noise",
    "SAMPLER_NAMES", "SAMPLERS", "SamplerInfo", "sample", "sampler_info",
    "SCHEDULER_NAMES", "ModelSampling", "ksampler_sigmas", "scheduler_sigmas", "slice_steps",
]
