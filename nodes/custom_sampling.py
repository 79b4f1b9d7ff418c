"""SamplerCustom and SamplerCustomAdvanced: KSampler taken apart into NOISE, GUIDER, SAMPLER and SIGMAS.

The pieces compose to exactly what KSampler computes: the same seeded noise, the same starting point
(`noise_scaling` at the first sigma), the same guided denoiser and the same sampler loop; SDE samplers
get the noise seed for their Brownian tree, as in ComfyUI.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import CONDITIONING, LATENT, MODEL, Boolean, Choice, Float, Int, Link
from nodes.conditioning.inpaint import with_inpaint_guider
from nodes.conditioning.regions import covers_whole
from nodes.conditioning.value import Conditioning, with_uncond_control
from nodes.guidance import guided_denoiser, unet_cond
from nodes.models.compiled import compiled_unet_used
from nodes.models.handles import ModelHandle
from nodes.models.patching import model_patches_applied
from nodes.models.unclip_loading import with_image_inputs
from nodes.previews import Previewer
from nodes.sampler_select import SAMPLER, SIGMAS, SamplerChoice
from nodes.sampling import MaskedDenoiser, initial_noise, latent_mask
from nodes.sampling.dual_cfg import DualCfgDenoiser

NOISE = "NOISE"
GUIDER = "GUIDER"
SEED_MAX = 2**64 - 1


@dataclass(frozen=True)
class NoiseSource:
    """Starting noise seeded as KSampler seeds it, or zeros when disabled; the seed also seeds the SDE
    samplers' Brownian tree either way (DisableNoise's is 0), as in ComfyUI."""

    seed: int
    enabled: bool = True

    def draw(self, shape: torch.Size) -> torch.Tensor:
        return initial_noise(self.seed, shape) if self.enabled else torch.zeros(shape)


@dataclass(frozen=True)
class Guider:
    """A model with its conditioning and CFG scale; `negative` None means no unconditional pass (BasicGuider)."""

    model: ModelHandle
    positive: Conditioning
    negative: Conditioning | None
    cfg: float

    def denoiser(self, shape: torch.Size):
        # BasicGuider: the positive alone (cfg 1 skips the unconditional pass, so the negative is never used).
        negative = self.positive if self.negative is None else self.negative
        return guided_denoiser(self.model, self.positive, negative, self.cfg, shape)


@dataclass(frozen=True)
class DualGuider:
    """Two prompts and a negative with two CFG scales (DualCFGGuider); `nested` picks ComfyUI's nested style."""

    model: ModelHandle
    cond1: Conditioning
    cond2: Conditioning
    negative: Conditioning
    cfg_conds: float
    cfg_cond2_negative: float
    nested: bool

    def denoiser(self, shape: torch.Size):
        size = (shape[2] * 8, shape[3] * 8)
        sides = []
        for entries in (self.cond1, self.cond2, self.negative):
            if len(entries) != 1 or not covers_whole(entries[0]):
                raise ValueError("DualCFGGuider takes one whole-image conditioning per input "
                                 "(no combined, area or masked conditioning)")
            sides.append(with_image_inputs(self.model, entries, 0)[0])
        positive, middle, negative = sides
        middle = with_uncond_control((positive,), (middle,))[0]
        negative = with_uncond_control((positive,), (negative,))[0]
        # ComfyUI marks the middle prompt as a negative one (SDXL refiner's size ids follow).
        return DualCfgDenoiser(self.model.unet, self.model.model_sampling, unet_cond(self.model, positive, *size),
                               unet_cond(self.model, middle, *size, negative=True),
                               unet_cond(self.model, negative, *size, negative=True),
                               self.cfg_conds, self.cfg_cond2_negative, self.nested, self.model.post_cfg)


def sample_custom(ctx: RunContext, guider: Guider | DualGuider, noise: NoiseSource, sampler: SamplerChoice,
                  sigmas: torch.Tensor, latent: dict) -> tuple[dict, dict]:
    """(output, denoised_output): the sampled LATENT and the last step's prediction of the clean latent."""
    model = guider.model
    scale = model.latent_scale
    samples = latent["samples"].float() * scale
    sigmas = sigmas.detach().float().cpu()
    if len(sigmas) <= 1:
        return {**latent}, {**latent}
    drawn = noise.draw(samples.shape)
    x = model.model_sampling.noise_scaling(float(sigmas[0]), drawn, samples)
    guider = with_inpaint_guider(guider, model.unet, scale, samples, latent.get("noise_mask"))
    denoiser = guider.denoiser(samples.shape)
    if latent.get("noise_mask") is not None:
        denoiser = MaskedDenoiser(denoiser, samples, drawn, latent_mask(latent["noise_mask"], samples.shape))
    total = len(sigmas) - 1
    preview = Previewer(ctx.preview, model.family.is_sdxl, ctx.paths) if ctx.settings.get("previews") else None
    last: dict[str, torch.Tensor] = {}

    def step(i: int, _total: int, _x: torch.Tensor, denoised: torch.Tensor) -> None:
        last["x0"] = denoised
        if preview is not None:
            preview(denoised)
        ctx.progress(i + 1, total)

    with model_patches_applied(model), compiled_unet_used(ctx, model, steps=total), torch.inference_mode():
        out = sampler.loop()(denoiser, x.float(), sigmas, noise.seed, step)
    output = {**latent, "samples": (out / scale).cpu()}
    denoised_output = {**latent, "samples": (last["x0"] / scale).cpu()} if "x0" in last else output
    return output, denoised_output


@node("RandomNoise", category="sampling/noise", outputs=[Out(NOISE)])
class RandomNoise:
    """Seeded starting noise, drawn as KSampler draws it."""

    noise_seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)

    def run(self, ctx: RunContext, noise_seed) -> tuple:
        return (NoiseSource(noise_seed),)


@node("DisableNoise", category="sampling/noise", outputs=[Out(NOISE)])
class DisableNoise:
    """No starting noise: sample from the latent as it is (for already-noised latents)."""

    def run(self, ctx: RunContext) -> tuple:
        return (NoiseSource(0, enabled=False),)


@node("CFGGuider", display_name="CFG Guider", category="sampling/guiders", outputs=[Out(GUIDER)])
class CFGGuider:
    """Classifier-free guidance between a positive and a negative conditioning."""

    model = Link(MODEL)
    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    cfg = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01)

    def run(self, ctx: RunContext, model, positive, negative, cfg) -> tuple:
        return (Guider(model, positive, negative, cfg),)


@node("BasicGuider", display_name="Basic Guider", category="sampling/guiders", outputs=[Out(GUIDER)])
class BasicGuider:
    """The conditioning alone, no CFG (distilled and few-step models)."""

    model = Link(MODEL)
    conditioning = Link(CONDITIONING)

    def run(self, ctx: RunContext, model, conditioning) -> tuple:
        return (Guider(model, conditioning, None, 1.0),)


@node("DualCFGGuider", display_name="Dual CFG Guider", category="sampling/guiders", outputs=[Out(GUIDER)])
class DualCFGGuider:
    """Guidance by two prompts: cond2 against the negative at one scale, cond1 beyond cond2 at another."""

    model = Link(MODEL)
    cond1 = Link(CONDITIONING)
    cond2 = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    cfg_conds = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01)
    cfg_cond2_negative = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01)
    style = Choice(["regular", "nested"])

    def run(self, ctx: RunContext, model, cond1, cond2, negative, cfg_conds, cfg_cond2_negative, style) -> tuple:
        return (DualGuider(model, cond1, cond2, negative, cfg_conds, cfg_cond2_negative, style == "nested"),)


@node("SamplerCustom", category="sampling/custom_sampling",
      outputs=[Out(LATENT, "output"), Out(LATENT, "denoised_output")])
class SamplerCustom:
    """KSampler with the sampler and the schedule given as objects."""

    model = Link(MODEL)
    add_noise = Boolean(True)
    noise_seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)
    cfg = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01)
    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    sampler = Link(SAMPLER)
    sigmas = Link(SIGMAS)
    latent_image = Link(LATENT)

    def run(self, ctx: RunContext, model, add_noise, noise_seed, cfg, positive, negative, sampler, sigmas,
            latent_image) -> tuple:
        noise = NoiseSource(noise_seed, enabled=add_noise)
        return sample_custom(ctx, Guider(model, positive, negative, cfg), noise, sampler, sigmas, latent_image)


@node("SamplerCustomAdvanced", category="sampling/custom_sampling",
      outputs=[Out(LATENT, "output"), Out(LATENT, "denoised_output")])
class SamplerCustomAdvanced:
    """Sampling from four objects: noise, guider, sampler and schedule."""

    noise = Link(NOISE)
    guider = Link(GUIDER)
    sampler = Link(SAMPLER)
    sigmas = Link(SIGMAS)
    latent_image = Link(LATENT)

    def run(self, ctx: RunContext, noise, guider, sampler, sigmas, latent_image) -> tuple:
        return sample_custom(ctx, guider, noise, sampler, sigmas, latent_image)

