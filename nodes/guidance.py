"""From CONDITIONING to the denoiser a sampler calls: CFG over one or many prompt entries.

One whole-image entry per side (the common case) uses the batched CFG denoiser, one UNet call
per step. Several entries (ConditioningCombine) or areas (ConditioningSetArea) are evaluated
entry by entry over their regions and blended by strength, as ComfyUI composes them.
"""

from __future__ import annotations

import math

import torch

from nodes.conditioning.regions import covers_whole, entry_weight
from nodes.conditioning.size_ids import sdxl_time_ids
from nodes.conditioning.value import CondEntry, Conditioning, with_uncond_control
from nodes.models.controlnet_loading import controls_for_model
from nodes.models.handles import ModelHandle
from nodes.models.unclip_loading import with_image_inputs
from nodes.sampling import Cond, unet_denoiser
from nodes.sampling.control import PreparedHints


def unet_cond(model: ModelHandle, entry: CondEntry, height: int, width: int, negative: bool = False) -> Cond:
    """The UNet inputs for one entry; SDXL also takes the pooled prompt and size/crop ids (whose
    defaults differ on the `negative` side for the refiner)."""
    controls = controls_for_model(entry.control, model)
    if not model.family.is_sdxl:  # unCLIP models also read an image embedding, as diffusers' class labels
        return Cond(entry.embeds, {"class_labels": entry.adm} if entry.adm is not None else {}, controls,
                    concat=entry.concat, grounding=entry.gligen)
    if entry.pooled is None:
        raise ValueError("SDXL conditioning needs a pooled prompt embedding (encode with an SDXL CLIP)")
    time_ids = sdxl_time_ids(model.family.size_ids, entry.size, height, width, negative)
    return Cond(entry.embeds, {"text_embeds": entry.pooled, "time_ids": time_ids}, controls, concat=entry.concat,
                grounding=entry.gligen)


def _whole(entries: Conditioning) -> bool:
    return len(entries) == 1 and covers_whole(entries[0])


class CompositeDenoiser:
    """CFG where each side is a strength-weighted blend of entries over their areas."""

    def __init__(self, model: ModelHandle, positive: Conditioning, negative: Conditioning, cfg: float,
                 size: tuple[int, int]) -> None:
        self.model = model
        self.positive = positive
        self.negative = negative
        self.cfg = float(cfg)
        self.size = size
        self.hints = PreparedHints()  # one run's ControlNet hints, shared by the denoiser each step builds

    def _side(self, x: torch.Tensor, sigma: torch.Tensor, entries: Conditioning,
              negative: bool = False) -> torch.Tensor:
        total = torch.zeros_like(x)
        weight = torch.full_like(x, 1e-37)  # ComfyUI's floor: uncovered regions predict 0
        for entry in entries:
            placed = entry_weight(entry, x, float(sigma), self.model.model_sampling)
            if placed is None:
                continue
            region, mult = placed
            cond = unet_cond(self.model, entry, *self.size, negative=negative)
            if cond.concat is not None:  # an inpainting UNet's mask and image channels, cut like x
                cond.concat = cond.concat[region]
            denoised = unet_denoiser(self.model.unet, self.model.model_sampling, cond, None, 1.0,
                                     hints=self.hints)(x[region], sigma)
            total[region] += denoised * mult
            weight[region] += mult
        return total / weight

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        cond = self._side(x, sigma, self.positive)
        if math.isclose(self.cfg, 1.0):
            return cond
        uncond = self._side(x, sigma, self.negative, negative=True)
        return uncond + (cond - uncond) * self.cfg


def guided_denoiser(model: ModelHandle, positive: Conditioning, negative: Conditioning, cfg: float,
                    latent_shape: torch.Size, seed: int = 0):
    """The denoiser for this model, conditioning and CFG scale at this latent size (`seed`: the
    sampler's, which also noises unCLIP image embeddings)."""
    size = (latent_shape[2] * 8, latent_shape[3] * 8)
    negative = with_uncond_control(positive, negative)
    positive, negative = with_image_inputs(model, positive, seed), with_image_inputs(model, negative, seed)
    if _whole(positive) and _whole(negative):
        return unet_denoiser(model.unet, model.model_sampling, unet_cond(model, positive[0], *size),
                             unet_cond(model, negative[0], *size, negative=True), cfg,
                             model.post_cfg)
    return CompositeDenoiser(model, positive, negative, cfg, size)
