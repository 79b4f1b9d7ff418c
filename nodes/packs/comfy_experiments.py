"""comfyanonymous/ComfyUI_experiments' sampler CFG functions (sampler_tonemap.py, sampler_rescalecfg.py,
sampler_tonemap_rescalecfg.py): CFG replaced by a function of the two noise predictions.

As ComfyUI's sampler CFG function they see `cond` = x - positive denoised and `uncond` = x - negative
denoised, and the CFG result is x minus what they return. They ride on the model handle as a CFG-replacing
term (nodes.sampling.cfg_terms). ReferenceOnlySimple is not rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import MODEL, Float, Link
from nodes.models.handles import ModelHandle
from nodes.sampling.cfg import PostCfgArgs
from nodes.sampling.cfg_terms import with_cfg_function

CATEGORY = "custom_node_experiments"


def tonemapped_guidance(cond: torch.Tensor, uncond: torch.Tensor, cond_scale: float,
                        multiplier: float) -> torch.Tensor:
    """uncond + cond_scale × (cond - uncond) with the difference's per-pixel magnitude (over channels) compressed
    by Reinhard's curve, whose white point is `multiplier` × (mean + 3 std) of the magnitudes per image."""
    difference = cond - uncond
    magnitude = torch.linalg.vector_norm(difference, dim=1)[:, None] + 1e-10
    direction = difference / magnitude
    top = (magnitude.std(dim=(1, 2, 3), keepdim=True) * 3 + magnitude.mean(dim=(1, 2, 3), keepdim=True)) * multiplier
    scaled = magnitude / top
    return uncond + direction * (scaled / (scaled + 1.0) * top) * cond_scale


def rescaled(cond: torch.Tensor, guided: torch.Tensor, multiplier: float) -> torch.Tensor:
    """The guided prediction rescaled to the positive one's standard deviation per image, mixed by `multiplier`
    (on noise predictions, unlike core RescaleCFG's v-predictions)."""
    scaled = guided * (cond.std(dim=(1, 2, 3), keepdim=True) / guided.std(dim=(1, 2, 3), keepdim=True))
    return multiplier * scaled + (1.0 - multiplier) * guided


@dataclass(frozen=True)
class ExperimentalCfg:
    """The experiments' CFG functions: tonemapped (`tonemap`) and/or rescaled (`rescale`) guidance."""

    tonemap: float | None = None
    rescale: float | None = None
    replaces_cfg = True

    def __call__(self, args: PostCfgArgs) -> torch.Tensor:
        if args.uncond_denoised is None:   # cfg 1: the positive side alone
            return args.denoised
        cond, uncond, scale = args.x - args.cond_denoised, args.x - args.uncond_denoised, args.denoiser.cfg
        if self.tonemap is not None:
            guided = tonemapped_guidance(cond, uncond, scale, self.tonemap)
        else:
            guided = uncond + scale * (cond - uncond)
        if self.rescale is not None:
            guided = rescaled(cond, guided, self.rescale)
        return args.x - guided


@node("ModelSamplerTonemapNoiseTest", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class ModelSamplerTonemapNoiseTest:
    """CFG with the guidance's magnitude tonemapped (Reinhard), against burn-in at high CFG."""

    model = Link(MODEL)
    multiplier = Float(1.0, min=0.0, max=100.0, step=0.01)

    def run(self, ctx: RunContext, model: ModelHandle, multiplier: float) -> tuple:
        return (with_cfg_function(model, ExperimentalCfg(tonemap=multiplier)),)


@node("RescaleClassifierFreeGuidanceTest", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class RescaleClassifierFreeGuidanceTest:
    """CFG rescaled to the positive prediction's spread (on noise predictions)."""

    model = Link(MODEL)
    multiplier = Float(0.7, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, model: ModelHandle, multiplier: float) -> tuple:
        return (with_cfg_function(model, ExperimentalCfg(rescale=multiplier)),)


@node("TonemapNoiseWithRescaleCFG", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class TonemapNoiseWithRescaleCFG:
    """Tonemapped guidance, then rescaled to the positive prediction's spread."""

    model = Link(MODEL)
    tonemap_multiplier = Float(1.0, min=0.0, max=100.0, step=0.01)
    rescale_multiplier = Float(1.0, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, model: ModelHandle, tonemap_multiplier: float, rescale_multiplier: float) -> tuple:
        return (with_cfg_function(model, ExperimentalCfg(tonemap=tonemap_multiplier, rescale=rescale_multiplier)),)
