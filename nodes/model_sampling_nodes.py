"""Nodes that change how a model is sampled without touching its weights: its noise table and
prediction type (ModelSamplingDiscrete), and how CFG combines the two sides (RescaleCFG, CFGZeroStar).

Each returns a new MODEL handle; the loaded UNet is shared and never changed.
"""

from __future__ import annotations

from dataclasses import replace

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import MODEL, Boolean, Choice, Float, Link
from nodes.models.handles import ModelHandle
from nodes.sampling.cfg_terms import CfgZeroStar, RescaledCfg, with_cfg_function, with_post_cfg
from nodes.sampling.schedule import model_sampling_for

# ComfyUI's names for the prediction types, and ours.
SAMPLING_TYPES = {"eps": "epsilon", "v_prediction": "v_prediction", "lcm": "lcm", "x0": "x0"}


@node("ModelSamplingDiscrete", category="advanced/model", outputs=[Out(MODEL)])
class ModelSamplingDiscrete:
    """Sample as a model of another prediction type: v-prediction, LCM (its 50-step distilled table), x0;
    `zsnr` rescales the table to zero terminal SNR (for models trained so)."""

    model = Link(MODEL)
    sampling = Choice(list(SAMPLING_TYPES))
    zsnr = Boolean(False)

    def run(self, ctx: RunContext, model: ModelHandle, sampling: str, zsnr: bool) -> tuple:
        return (replace(model, model_sampling=model_sampling_for(SAMPLING_TYPES[sampling], zsnr)),)


@node("RescaleCFG", category="advanced/model", outputs=[Out(MODEL)])
class RescaleCFG:
    """CFG rescaled to the positive prediction's spread, against the overexposure of high CFG (v-prediction
    and zero-SNR models especially); `multiplier` mixes it with plain CFG."""

    model = Link(MODEL)
    multiplier = Float(0.7, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, model: ModelHandle, multiplier: float) -> tuple:
        return (with_cfg_function(model, RescaledCfg(multiplier)),)


@node("CFGZeroStar", category="advanced/guidance", outputs=[Out(MODEL, "patched_model")])
class CFGZeroStar:
    """CFG-Zero*: the negative side scaled by its projection of the positive one at every step."""

    model = Link(MODEL)

    def run(self, ctx: RunContext, model: ModelHandle) -> tuple:
        return (with_post_cfg(model, CfgZeroStar()),)
