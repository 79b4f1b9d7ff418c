"""Model patch nodes (ComfyUI's model_patches/unet): FreeU, HyperTile, ToMe and Perturbed-Attention Guidance.

Each returns a new MODEL handle carrying the patch; the shared UNet is never changed. UNet hooks
(`nodes.models.unet_hooks`) are attached only while KSampler runs and removed after it, and PAG is a
term added after CFG (`nodes.sampling.cfg.PostCfgArgs`), so the unpatched model computes exactly
what it did before. HyperTile and ToMe trade a little fidelity for speed on large latents
(bench/model_patches.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from engine.context import RunContext
from engine.declare import Out, Provenance, node
from engine.paths import ModelFiles
from engine.types import MODEL, Boolean, Choice, Float, Int, Link
from nodes.models.attention_patches import HyperTileHook, IdentityAttentionHook, TokenMergingHook
from nodes.models.freeu import FreeUHook
from nodes.models.handles import ModelHandle
from nodes.models.hypernetwork import HypernetworkHook, read_hypernetwork
from nodes.models.sag import MiddleAttentionRecorder, SelfAttentionGuidanceTerm
from nodes.models.unet_hooks import hooks_attached
from nodes.sampling.cfg import PostCfgArgs

CATEGORY = "model_patches/unet"
FACTOR = dict(min=0.0, max=10.0, step=0.01)


def with_hook(model: ModelHandle, hook) -> ModelHandle:
    return replace(model, hooks=model.hooks + (hook,))


@node("FreeU", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class FreeU:
    """FreeU: strengthens the decoder's backbone features (b1, b2) and damps the low frequencies of
    its skip connections (s1, s2), for more detail at no cost."""

    model = Link(MODEL)
    b1 = Float(1.1, **FACTOR)
    b2 = Float(1.2, **FACTOR)
    s1 = Float(0.9, **FACTOR)
    s2 = Float(0.2, **FACTOR)

    def run(self, ctx: RunContext, model: ModelHandle, b1: float, b2: float, s1: float, s2: float) -> tuple:
        return (with_hook(model, FreeUHook(b1, b2, s1, s2)),)


@node("FreeU_V2", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class FreeU_V2:
    """FreeU v2: the backbone scale follows each position's normalised channel mean."""

    model = Link(MODEL)
    b1 = Float(1.3, **FACTOR)
    b2 = Float(1.4, **FACTOR)
    s1 = Float(0.9, **FACTOR)
    s2 = Float(0.2, **FACTOR)

    def run(self, ctx: RunContext, model: ModelHandle, b1: float, b2: float, s1: float, s2: float) -> tuple:
        return (with_hook(model, FreeUHook(b1, b2, s1, s2, version=2)),)


@node("HyperTile", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class HyperTile:
    """Self-attention within tiles of about tile_size pixels: much faster on large images."""

    model = Link(MODEL)
    tile_size = Int(256, min=1, max=2048)
    swap_size = Int(2, min=1, max=128)
    max_depth = Int(0, min=0, max=10)
    scale_depth = Boolean(False)

    def run(self, ctx: RunContext, model: ModelHandle, tile_size: int, swap_size: int, max_depth: int,
            scale_depth: bool) -> tuple:
        return (with_hook(model, HyperTileHook(tile_size, swap_size, max_depth, scale_depth)),)


@node("TomePatchModel", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class TomePatchModel:
    """Token merging (ToMe): `ratio` of the full-resolution tokens merged with similar ones before
    self-attention, for speed on large images."""

    model = Link(MODEL)
    ratio = Float(0.3, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, model: ModelHandle, ratio: float) -> tuple:
        return (with_hook(model, TokenMergingHook(ratio)),)


@dataclass(frozen=True)
class PerturbedAttentionTerm:
    """PAG after CFG: result + (cond - cond with the middle block's self-attention made identity) · scale."""

    scale: float

    def __call__(self, args: PostCfgArgs) -> torch.Tensor:
        if self.scale == 0:
            return args.denoised
        with hooks_attached(args.denoiser.unet, [IdentityAttentionHook()]):
            perturbed = args.denoiser.positive_denoised(args.x, args.sigma)
        return args.denoised + (args.cond_denoised - perturbed) * self.scale


@node("PerturbedAttentionGuidance", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class PerturbedAttentionGuidance:
    """Perturbed-Attention Guidance: steers away from what the model predicts with its middle block's
    self-attention disabled (one more UNet pass per step)."""

    model = Link(MODEL)
    scale = Float(3.0, min=0.0, max=100.0, step=0.01, round=0.01)

    def run(self, ctx: RunContext, model: ModelHandle, scale: float) -> tuple:
        return (replace(model, post_cfg=model.post_cfg + (PerturbedAttentionTerm(scale),)),)


@node("SelfAttentionGuidance", display_name="Self-Attention Guidance", category="_for_testing",
      outputs=[Out(MODEL, "MODEL")])
class SelfAttentionGuidance:
    """Self-Attention Guidance: steers away from what the model predicts from its negative prediction
    blurred where the middle block attends most (one more UNet pass per step; nodes.models.sag)."""

    model = Link(MODEL)
    scale = Float(0.5, min=-2.0, max=5.0, step=0.01)
    blur_sigma = Float(2.0, min=0.0, max=10.0, step=0.1)

    def run(self, ctx: RunContext, model: ModelHandle, scale: float, blur_sigma: float) -> tuple:
        recorder = MiddleAttentionRecorder()
        term = SelfAttentionGuidanceTerm(scale, blur_sigma, recorder)
        return (replace(model, hooks=model.hooks + (recorder,), post_cfg=model.post_cfg + (term,)),)


@node("HypernetworkLoader", category="loaders", outputs=[Out(MODEL, "MODEL")],
      provenance=Provenance("hypernetworks", ("strength",)))
class HypernetworkLoader:
    """An A1111 hypernetwork from models/hypernetworks: small MLPs that change every attention's key and
    value inputs, at `strength` (nodes.models.hypernetwork)."""

    model = Link(MODEL)
    hypernetwork_name = Choice(ModelFiles("hypernetworks"))
    strength = Float(1.0, min=-10.0, max=10.0, step=0.01)

    def run(self, ctx: RunContext, model: ModelHandle, hypernetwork_name: str, strength: float) -> tuple:
        hypernetwork = read_hypernetwork(ctx.paths.model_path("hypernetworks", hypernetwork_name))
        return (with_hook(model, HypernetworkHook(hypernetwork, strength)),)
