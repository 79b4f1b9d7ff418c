"""KSampler and KSamplerAdvanced: denoise a latent with ComfyUI's sampler and scheduler names.

The latent is scaled into the model's space on the way in and back on the way out; the initial
noise comes from the seed exactly as ComfyUI draws it (CPU, float32, whole batch), so a seed
gives the same image on any device. One progress event and one interrupt check per step.
"""

from __future__ import annotations

import torch

from engine.context import RunContext
from engine.declare import Out, Provenance, node
from engine.types import CONDITIONING, LATENT, MODEL, Choice, Float, Int, Link
from nodes.conditioning.inpaint import with_inpaint_inputs
from nodes.guidance import guided_denoiser
from nodes.models.compiled import compiled_unet_used
from nodes.models.handles import ModelHandle
from nodes.models.patching import model_patches_applied
from nodes.previews import Previewer
from nodes.sampling import (
    SAMPLER_NAMES,
    SCHEDULER_NAMES,
    MaskedDenoiser,
    initial_noise,
    inpaint_noise,
    ksampler_sigmas,
    latent_mask,
    sample,
    sampler_info,
    slice_steps,
)

SEED_MAX = 2**64 - 1


def run_sampler(ctx: RunContext, model: ModelHandle, seed: int, steps: int, cfg: float, sampler_name: str,
                scheduler: str, positive, negative, latent: dict, denoise: float = 1.0, add_noise: bool = True,
                start_step: int | None = None, last_step: int | None = None,
                force_full_denoise: bool = False, noise: torch.Tensor | None = None) -> dict:
    """The shared body of both KSamplers; returns the new LATENT dict. `noise` replaces the seed's
    initial noise (node packs with noise of their own); the seed still drives the per-step noise."""
    info = sampler_info(sampler_name)
    ms = model.model_sampling
    scale = model.latent_scale
    samples = latent["samples"].float() * scale
    schedule = ksampler_sigmas(ms, scheduler, steps, denoise, info.discard_penultimate_sigma)
    sigmas = slice_steps(schedule, start_step, last_step, force_full_denoise)
    if sigmas is None or len(sigmas) <= 1:
        return {**latent}
    if noise is None:
        noise = initial_noise(seed, samples.shape) if add_noise else torch.zeros_like(samples)
    x = ms.noise_scaling(float(sigmas[0]), noise, samples) if add_noise else samples
    positive, negative = (with_inpaint_inputs(model.unet, scale, c, samples, latent.get("noise_mask"))
                          for c in (positive, negative))
    denoiser = guided_denoiser(model, positive, negative, cfg, samples.shape, seed)
    if latent.get("noise_mask") is not None:
        mask = latent_mask(latent["noise_mask"], samples.shape)
        kept_noise = inpaint_noise(seed, samples.shape) if info.random_inpaint_noise else noise
        denoiser = MaskedDenoiser(denoiser, samples, kept_noise, mask)
    total = len(sigmas) - 1

    preview = Previewer(ctx.preview, model.family.is_sdxl, ctx.paths) if ctx.settings.get("previews") else None

    def step(i: int, _total: int, _x: torch.Tensor, denoised: torch.Tensor) -> None:
        if preview is not None:
            preview(denoised)
        ctx.progress(i + 1, total)

    with model_patches_applied(model), compiled_unet_used(ctx, model, steps=total), torch.inference_mode():
        out = sample(sampler_name, denoiser, x, sigmas, seed, step)
    return {**latent, "samples": (out / scale).cpu()}


@node("KSampler", category="sampling", outputs=[Out(LATENT, "LATENT")],
      provenance=Provenance("samplers", ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")))
class KSampler:
    """Denoises a latent with a model, guided by positive and negative conditioning."""

    model = Link(MODEL)
    seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)
    steps = Int(20, min=1, max=10_000)
    cfg = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01)
    sampler_name = Choice(SAMPLER_NAMES)
    scheduler = Choice(SCHEDULER_NAMES)
    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    latent_image = Link(LATENT)
    denoise = Float(1.0, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
            denoise) -> tuple:
        return (run_sampler(ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                            latent_image, denoise=denoise),)


@node("KSamplerAdvanced", display_name="KSampler (Advanced)", category="sampling", outputs=[Out(LATENT, "LATENT")],
      provenance=Provenance("samplers", ("noise_seed", "steps", "cfg", "sampler_name", "scheduler",
                                         "start_at_step", "end_at_step")))
class KSamplerAdvanced:
    """KSampler with control over noise and the range of steps (for multi-stage workflows)."""

    model = Link(MODEL)
    add_noise = Choice(["enable", "disable"])
    noise_seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)
    steps = Int(20, min=1, max=10_000)
    cfg = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01)
    sampler_name = Choice(SAMPLER_NAMES)
    scheduler = Choice(SCHEDULER_NAMES)
    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    latent_image = Link(LATENT)
    start_at_step = Int(0, min=0, max=10_000)
    end_at_step = Int(10_000, min=0, max=10_000)
    return_with_leftover_noise = Choice(["disable", "enable"])

    def run(self, ctx: RunContext, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler, positive,
            negative, latent_image, start_at_step, end_at_step, return_with_leftover_noise) -> tuple:
        return (run_sampler(ctx, model, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative,
                            latent_image, add_noise=add_noise == "enable", start_step=start_at_step,
                            last_step=end_at_step, force_full_denoise=return_with_leftover_noise != "enable"),)
