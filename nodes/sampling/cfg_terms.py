"""Terms that change how CFG combines the two predictions: RescaleCFG and CFG-Zero*.

They ride on the model handle's `post_cfg` terms (the mechanism PAG uses), applied in order after
each CFG step. A term that `replaces_cfg` stands for ComfyUI's sampler CFG function, of which a
model holds one and which runs before every post-CFG function: `with_cfg_function` keeps it first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from .cfg import PostCfgArgs


@dataclass(frozen=True)
class RescaledCfg:
    """Lin et al.'s rescaled CFG (ComfyUI's RescaleCFG): CFG taken on v-predictions, rescaled to the
    positive side's standard deviation per image and mixed with plain CFG by `multiplier`."""

    multiplier: float
    replaces_cfg = True

    def __call__(self, args: PostCfgArgs) -> torch.Tensor:
        if args.uncond_denoised is None:  # cfg 1: CFG is the positive side; rescaling it changes nothing
            return args.denoised
        s = float(args.sigma)
        root = math.sqrt(s * s + 1.0)
        x_vp = args.x / (s * s + 1.0)
        cond = (x_vp - args.cond_denoised) * root / s
        uncond = (x_vp - args.uncond_denoised) * root / s
        guided = uncond + args.denoiser.cfg * (cond - uncond)
        rescaled = guided * (cond.std(dim=(1, 2, 3), keepdim=True) / guided.std(dim=(1, 2, 3), keepdim=True))
        mixed = self.multiplier * rescaled + (1.0 - self.multiplier) * guided
        return x_vp - mixed * s / root


@dataclass(frozen=True)
class CfgZeroStar:
    """CFG-Zero* (Fan et al.): the negative side scaled by the optimal projection of the positive noise
    onto the negative one, per image, as ComfyUI's CFGZeroStar post-CFG function."""

    replaces_cfg = False

    def __call__(self, args: PostCfgArgs) -> torch.Tensor:
        if args.uncond_denoised is None:
            return args.denoised
        x, uncond = args.x, args.uncond_denoised
        positive = (x - args.cond_denoised).flatten(1)
        negative = (x - uncond).flatten(1)
        alpha = (positive * negative).sum(1) / ((negative * negative).sum(1) + 1e-8)
        alpha = alpha.view(-1, *([1] * (x.ndim - 1)))
        return args.denoised + uncond * (alpha - 1.0) + args.denoiser.cfg * uncond * (1.0 - alpha)


def with_cfg_function(model, term):
    """`model` with `term` as its one CFG-replacing term, placed before the other post-CFG terms."""
    others = tuple(t for t in model.post_cfg if not getattr(t, "replaces_cfg", False))
    return replace(model, post_cfg=(term, *others))


def with_post_cfg(model, term):
    """`model` with `term` appended to its post-CFG terms."""
    return replace(model, post_cfg=(*model.post_cfg, term))
