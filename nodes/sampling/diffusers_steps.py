"""Samplers that run diffusers' own scheduler classes on our (ComfyUI's) sigma schedule.

The scheduler is configured with `prediction_type="sample"` and fed the denoiser's
prediction of x0, so the model call (and CFG, and inpaint masking) stay ours while
the update rule is diffusers'. The schedule goes in through `set_timesteps(sigmas=...)`
where a class accepts it (Euler); elsewhere the sigma table a `set_timesteps` call
builds is replaced by ours before the first step, and the step counter starts at 0
(`set_begin_index`), so diffusers never looks our sigmas up by timestep.

Multistep DPM-Solver and UniPC work on the variance-preserving latent
x / sqrt(1 + sigma^2); the driver converts at the boundary.
"""

from __future__ import annotations

import math

import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from .noise import StepNoise

_SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="sample")


def _install_sigmas(scheduler, sigmas: torch.Tensor) -> None:
    """Replace the schedule a `set_timesteps` call built with ours (same length, same meaning)."""
    steps = len(sigmas) - 1
    scheduler.set_timesteps(steps)
    scheduler.sigmas = sigmas.detach().float().cpu().clone()
    scheduler.timesteps = torch.arange(steps, 0, -1, dtype=torch.float32)
    scheduler.set_begin_index(0)


def _drive(scheduler, denoise, x, sigmas, callback, *, variance_preserving=False, generator=None):
    """The shared loop: denoise at each scheduler sigma, report, let the scheduler step.

    A scheduler configured for epsilon gets the noise implied by the prediction,
    (x - denoised) / sigma, from which it recovers the same prediction.
    """
    as_epsilon = scheduler.config.prediction_type == "epsilon"
    total = len(sigmas) - 1
    table = scheduler.sigmas
    step_kwargs = {} if generator is None else {"generator": generator}

    def to_k(sample: torch.Tensor, s: float) -> torch.Tensor:
        # Only the variance-preserving schedulers keep a rescaled latent; elsewhere it is x itself (no per-step copy).
        return sample * math.sqrt(1.0 + s * s) if variance_preserving else sample

    s0 = float(table[0])
    sample = x / math.sqrt(1.0 + s0 * s0) if variance_preserving else x
    for i in range(total):
        sigma = float(table[i])
        x_k = to_k(sample, sigma)
        denoised = denoise(x_k, table[i].reshape(()))
        callback(i, total, x_k, denoised)
        t = scheduler.timesteps[i]
        # Euler's `step` warns unless `scale_model_input` ran first; the scaled input it would
        # compute (a latent-sized division) is never used here, so only its flag is set.
        if hasattr(scheduler, "is_scale_input_called"):
            scheduler.is_scale_input_called = True
        output = (x_k - denoised) / sigma if as_epsilon else denoised
        sample = scheduler.step(output, t, sample, **step_kwargs).prev_sample
    return to_k(sample, float(table[total]))


def _noise_generator(seed: int, like: torch.Tensor) -> torch.Generator:
    # Same stream as StepNoise: a CPU generator seeded with seed + 1, as ComfyUI seeds it on the CPU.
    return StepNoise(seed, like).generator


def euler(denoise, x, sigmas, seed, callback):
    scheduler = EulerDiscreteScheduler(**_SCHEDULE)
    scheduler.set_timesteps(sigmas=sigmas.detach().float().cpu().tolist())
    scheduler.set_begin_index(0)
    return _drive(scheduler, denoise, x, sigmas, callback)


def euler_ancestral(denoise, x, sigmas, seed, callback):
    # This class cannot take a prediction of x0, so it is fed the equivalent noise.
    scheduler = EulerAncestralDiscreteScheduler(**{**_SCHEDULE, "prediction_type": "epsilon"})
    _install_sigmas(scheduler, sigmas)
    return _drive(scheduler, denoise, x, sigmas, callback, generator=_noise_generator(seed, x))


def _dpm_solver(sigmas: torch.Tensor, **config) -> DPMSolverMultistepScheduler:
    # ComfyUI takes a first-order step only when the next sigma is 0; diffusers' "zero"
    # final sigma gives exactly that, and otherwise the last step must stay second order.
    ends_at_zero = float(sigmas[-1]) == 0
    scheduler = DPMSolverMultistepScheduler(
        **_SCHEDULE,
        solver_order=2,
        solver_type="midpoint",
        lower_order_final=ends_at_zero,
        final_sigmas_type="zero" if ends_at_zero else "sigma_min",
        **config,
    )
    _install_sigmas(scheduler, sigmas)
    return scheduler


def dpmpp_2m(denoise, x, sigmas, seed, callback):
    scheduler = _dpm_solver(sigmas, algorithm_type="dpmsolver++")
    return _drive(scheduler, denoise, x, sigmas, callback, variance_preserving=True)


def _uni_pc(variant: str):
    def run(denoise, x, sigmas, seed, callback):
        # ComfyUI's UniPC stops at sigma 0.001 instead of 0 (its log-SNR is infinite at 0).
        sigmas = sigmas.clone()
        if float(sigmas[-1]) == 0:
            sigmas[-1] = 0.001
        steps = len(sigmas) - 1
        scheduler = UniPCMultistepScheduler(
            **_SCHEDULE, solver_order=max(1, min(3, steps - 1)), solver_type=variant,
            predict_x0=True, lower_order_final=True,
        )
        _install_sigmas(scheduler, sigmas)
        return _drive(scheduler, denoise, x, sigmas, callback, variance_preserving=True)

    return run


uni_pc = _uni_pc("bh1")
uni_pc_bh2 = _uni_pc("bh2")
