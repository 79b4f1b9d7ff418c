"""Kosinkadink/ComfyUI-Advanced-ControlNet's basics that shared SD workflows use: its loader, its apply node with a
mask and per-block weights, and scaled-soft weights (adv_control/nodes_deprecated.py, whose node ids those
workflows name; control.py, utils.py for what the weights do).

A CONTROL_NET_WEIGHTS value scales each residual the ControlNet adds to the UNet; a TIMESTEP_KEYFRAME here only
carries such weights (ScaledSoftControlNetWeights' shortcut): the pack's keyframe schedules are not built.
The sampler applies both through nodes.sampling.control (`block_scales`, `mask` on the applied control).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import ModelFiles, Paths
from engine.types import CONDITIONING, IMAGE, MASK, MODEL, VAE, Boolean, Choice, Float, Link
from nodes.conditioning.value import AppliedControl, Conditioning
from nodes.controlnet import CONTROL_NET, ControlNetLoader
from nodes.models.controlnet_loading import ControlNetHandle

PACK = "Adv-ControlNet 🛂🅐🅒🅝"
CONTROL_NET_WEIGHTS = "CONTROL_NET_WEIGHTS"
TIMESTEP_KEYFRAME = "TIMESTEP_KEYFRAME"
MIDDLE_MULT = "middle_mult"   # the pack's Extras.MIDDLE_MULT key of CN_WEIGHTS_EXTRAS


@dataclass(frozen=True)
class ControlWeights:
    """The pack's universal weights: the down residual i of n gets base_multiplier^(n - i) (the deepest
    base_multiplier¹, the first base_multiplier^n), the middle block 1 × the `middle_mult` extra."""

    base_multiplier: float = 1.0
    uncond_multiplier: float = 1.0
    extras: Mapping[str, Any] = field(default_factory=dict)

    def block_scales(self, count: int) -> tuple[list[float], float]:
        return ([self.base_multiplier ** float(count - i) for i in range(count)],
                float(self.extras.get(MIDDLE_MULT, 1.0)))


@dataclass(frozen=True)
class TimestepKeyframes:
    """A TIMESTEP_KEYFRAME value: here only the weights its one keyframe carries."""

    weights: ControlWeights | None = None


@dataclass(frozen=True)
class AdvancedControlNetHandle(ControlNetHandle):
    """A ControlNet loaded by the advanced loader, with the keyframes (weights) it was given."""

    keyframes: TimestepKeyframes | None = None


@dataclass(frozen=True, eq=False)
class WeightedControl(AppliedControl):
    """An applied control with the pack's extras, read by nodes.sampling.control: `block_scales(count)` gives
    (down scales, mid scale); `mask` [B, H, W] scales every residual where it is below 1."""

    block_scales: Callable[[int], tuple[list[float], float]] | None = None
    mask: torch.Tensor | None = None


@node("ControlNetLoaderAdvanced", display_name="Load Advanced ControlNet Model 🛂🅐🅒🅝", category=PACK,
      outputs=[Out(CONTROL_NET, "CONTROL_NET")], uses_settings=["precision", "device"], deprecated=True)
class ControlNetLoaderAdvanced:
    """Loads a ControlNet as ControlNetLoader does; weights given as `tk_optional` apply wherever it is used."""

    control_net_name = Choice(ModelFiles("controlnet"))
    tk_optional = Link(TIMESTEP_KEYFRAME, optional=True)

    def fingerprint(self, paths: Paths, control_net_name: str) -> str:
        return ControlNetLoader().fingerprint(paths, control_net_name)

    def run(self, ctx: RunContext, control_net_name: str, tk_optional: TimestepKeyframes | None = None) -> tuple:
        handle = ControlNetLoader().run(ctx, control_net_name)[0]
        fields = {name: getattr(handle, name) for name in ("net", "source", "control_type")}
        return (AdvancedControlNetHandle(**fields, keyframes=tk_optional),)


def _weights(control_net: ControlNetHandle, timestep_kf: TimestepKeyframes | None,
             weights_override: ControlWeights | None) -> ControlWeights | None:
    """The pack's precedence: the override, then the apply node's keyframes, then the loader's."""
    loader_kf = getattr(control_net, "keyframes", None)
    candidates = (weights_override, timestep_kf.weights if timestep_kf is not None else None,
                  loader_kf.weights if loader_kf is not None else None)
    return next((weights for weights in candidates if weights is not None), None)


@node("ACN_AdvancedControlNetApply", display_name="Apply Advanced ControlNet 🛂🅐🅒🅝", category=PACK,
      outputs=[Out(CONDITIONING, "positive"), Out(CONDITIONING, "negative"), Out(MODEL, "model_opt")],
      deprecated=True)
class ACNAdvancedControlNetApply:
    """Applies a ControlNet as "Apply ControlNet" does, with optional per-block weights and a mask over the
    image; `model_optional` passes through. Latent keyframes are not built."""

    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    control_net = Link(CONTROL_NET)
    image = Link(IMAGE)
    strength = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent = Float(1.0, min=0.0, max=1.0, step=0.001)
    mask_optional = Link(MASK, optional=True)
    timestep_kf = Link(TIMESTEP_KEYFRAME, optional=True)
    latent_kf_override = Link("LATENT_KEYFRAME", optional=True)
    weights_override = Link(CONTROL_NET_WEIGHTS, optional=True)
    model_optional = Link(MODEL, optional=True)
    vae_optional = Link(VAE, optional=True)

    def run(self, ctx: RunContext, positive: Conditioning, negative: Conditioning, control_net: ControlNetHandle,
            image: torch.Tensor, strength: float, start_percent: float, end_percent: float,
            mask_optional: torch.Tensor | None = None, timestep_kf: TimestepKeyframes | None = None,
            latent_kf_override: Any = None, weights_override: ControlWeights | None = None,
            model_optional: Any = None, vae_optional: Any = None) -> tuple:
        if latent_kf_override is not None:
            raise ValueError("ACN_AdvancedControlNetApply: latent keyframes (latent_kf_override) are not supported")
        if strength == 0:
            return (positive, negative, model_optional)
        weights = _weights(control_net, timestep_kf, weights_override)
        if weights is not None and weights.uncond_multiplier != 1.0:
            raise ValueError(f"ACN_AdvancedControlNetApply: uncond_multiplier {weights.uncond_multiplier} is not "
                             "supported (only 1.0: the negative prompt gets the ControlNet as the positive does)")
        mask = None
        if mask_optional is not None:
            mask = mask_optional if mask_optional.ndim >= 3 else mask_optional.unsqueeze(0)
        hint = image.movedim(-1, 1)
        chains: dict[tuple, tuple] = {}   # as ControlNetApplyAdvanced: entries with the same controls share one

        def chained(entry):
            if entry.control not in chains:
                applied = WeightedControl(control_net.applied_net, control_net.source, hint, strength, start_percent,
                                          end_percent, None if weights is None else weights.block_scales, mask)
                chains[entry.control] = entry.control + (applied,)
            return entry.with_(control=chains[entry.control])

        return (tuple(map(chained, positive)), tuple(map(chained, negative)), model_optional)


@node("ScaledSoftControlNetWeights", display_name="Scaled Soft Weights 🛂🅐🅒🅝", category=f"{PACK}/weights",
      outputs=[Out(CONTROL_NET_WEIGHTS, "CN_WEIGHTS"), Out(TIMESTEP_KEYFRAME, "TK_SHORTCUT")], deprecated=True)
class ScaledSoftControlNetWeights:
    """Weights that fade ControlNet residuals towards the high-resolution blocks: base_multiplier^(n - i) for the
    i-th of n (0.825: from 0.825¹² ≈ 0.1 to 0.825), the middle block 1. `flip_weights` is ignored, as the pack does."""

    base_multiplier = Float(0.825, min=0.0, max=1.0, step=0.001)
    flip_weights = Boolean(False)
    uncond_multiplier = Float(1.0, min=0.0, max=1.0, step=0.01, optional=True)
    cn_extras = Link("CN_WEIGHTS_EXTRAS", optional=True)

    def run(self, ctx: RunContext, base_multiplier: float, flip_weights: bool, uncond_multiplier: float = 1.0,
            cn_extras: Mapping[str, Any] | None = None) -> tuple:
        weights = ControlWeights(base_multiplier, uncond_multiplier, dict(cn_extras or {}))
        return (weights, TimestepKeyframes(weights))

