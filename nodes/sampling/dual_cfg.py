"""Two-prompt guidance (ComfyUI's DualCFGGuider): a positive, a middle and a negative prompt in one UNet call.

Regular: CFG from the negative to the middle at `cfg_middle`, plus the positive's difference from the
middle times `cfg_positive`. Nested: CFG from the middle to the positive, then from the negative to
that. Post-CFG terms (RescaleCFG, CFG-Zero*, PAG) apply to the CFG steps as ComfyUI applies them.
"""

from __future__ import annotations

import math

import torch

from .cfg import Cond, unet_denoiser
from .schedule import ModelSampling


class DualCfgDenoiser:
    """The denoiser of DualCFGGuider; each side is a `Cond` (whole-image conditioning)."""

    def __init__(self, unet: torch.nn.Module, model_sampling: ModelSampling, positive: Cond, middle: Cond,
                 negative: Cond, cfg_positive: float, cfg_middle: float, nested: bool, post_cfg: tuple = ()):
        self.model_sampling = model_sampling
        # Two plain CFG denoisers share the UNet: one per CFG step, so post-CFG terms see their scale.
        self.outer = unet_denoiser(unet, model_sampling, middle, negative, cfg_middle, post_cfg)
        self.inner = unet_denoiser(unet, model_sampling, positive, middle, cfg_positive, post_cfg)
        self.conds = {"negative": negative, "middle": middle, "positive": positive}
        self.cfg_positive, self.cfg_middle, self.nested = float(cfg_positive), float(cfg_middle), nested
        names = ["negative", "middle", "positive"]
        if not nested and math.isclose(self.cfg_middle, 1.0):  # ComfyUI's cfg 1 shortcuts
            names.remove("negative")
            if math.isclose(self.cfg_positive, 1.0):
                names.remove("middle")
        self.names = names

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        s = float(sigma)
        timestep = self.model_sampling.timestep(sigma).float().reshape(1)
        outputs = self.outer._unet_output(x / math.sqrt(s * s + 1.0), timestep,
                                          [self.conds[n] for n in self.names], s).chunk(len(self.names))
        pred = {n: self.outer._denoised(x, s, out) for n, out in zip(self.names, outputs)}
        positive, middle, negative = pred["positive"], pred.get("middle"), pred.get("negative")
        if self.nested:
            assert middle is not None and negative is not None
            text = self.inner._after_cfg(x, sigma, positive, middle, middle + (positive - middle) * self.cfg_positive)
            return negative + self.cfg_middle * (text - negative)
        if middle is None:
            return positive
        if negative is None:
            guided = self.outer._after_cfg(x, sigma, middle, None, middle)
        else:
            guided = self.outer._after_cfg(x, sigma, middle, negative, negative + (middle - negative) * self.cfg_middle)
        return guided + (positive - middle) * self.cfg_positive
