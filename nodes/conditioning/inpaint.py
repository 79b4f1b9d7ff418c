"""What an inpainting UNet (9 input channels: SD1.5-, SD2- and SDXL-inpainting) reads beside the noisy latent.

Such a UNet takes `cat([x, mask, masked_image], dim=1)`: the mask (1 = regenerate) and the latent of the
image with that region greyed out, both at the latent's size, as diffusers' StableDiffusionInpaintPipeline
passes them and ComfyUI builds them (`BaseModel.concat_cond`): the mask and image come from
InpaintModelConditioning (`concat_mask`, `concat_latent_image` on the conditioning), else from the latent
being sampled (VAEEncodeForInpaint's `noise_mask`, and the latent itself); with no mask at all, the mask is
all ones and the image a blank one.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import TypeVar

import torch
import torch.nn.functional as F

from nodes.conditioning.value import CondEntry, Conditioning

Holder = TypeVar("Holder")

LATENT_CHANNELS = 4
INPAINT_CHANNELS = LATENT_CHANNELS + 1 + LATENT_CHANNELS  # x, mask, masked-image latent
# ComfyUI's latent (in the model's space) of an image that is zero in pixel space, per channel: the
# masked image of a 9-channel model when nothing says what to keep.
BLANK_IMAGE_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)


def unet_in_channels(unet: torch.nn.Module) -> int:
    return int(getattr(getattr(unet, "config", None), "in_channels", LATENT_CHANNELS))


def _to_batch(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat along the batch dimension (cyclically) to `batch` items, as ComfyUI's resize_to_batch_size."""
    if t.shape[0] == batch:
        return t
    return t.repeat(math.ceil(batch / t.shape[0]), *([1] * (t.ndim - 1)))[:batch]


def _fit(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, C, h, w] to [B, C, height, width]: centre-cropped to that aspect ratio, then bilinear (ComfyUI's
    common_upscale with crop="center")."""
    if t.shape[-2:] == (height, width):
        return t
    h, w = t.shape[-2:]
    old_aspect, new_aspect = w / h, width / height
    if old_aspect > new_aspect:
        x = round((w - w * (new_aspect / old_aspect)) / 2)
        t = t[..., :, x:w - x]
    elif old_aspect < new_aspect:
        y = round((h - h * (old_aspect / new_aspect)) / 2)
        t = t[..., y:h - y, :]
    return F.interpolate(t, size=(height, width), mode="bilinear")


def inpaint_channels(samples: torch.Tensor, mask: torch.Tensor | None, image: torch.Tensor | None) -> torch.Tensor:
    """The 5 extra input channels [B, 5, h, w] for a latent `samples` [B, 4, h, w] in the model's space.

    `mask`: 1 where to regenerate, any size ([H, W], [B, H, W] or [B, 1, H, W]); it is resized to the
    latent and rounded to 0/1. `image`: the masked image's latent in the model's space (None: `samples`).
    """
    batch, _, height, width = samples.shape
    if mask is None:
        blank = torch.tensor(BLANK_IMAGE_LATENT, dtype=samples.dtype).reshape(1, LATENT_CHANNELS, 1, 1)
        return torch.cat([torch.ones(batch, 1, height, width, dtype=samples.dtype),
                          blank.expand(batch, -1, height, width)], dim=1)
    mask = mask.to(samples.dtype).reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    mask = _to_batch(_fit(mask, height, width).round(), batch)
    image = samples if image is None else _to_batch(_fit(image.to(samples.dtype), height, width), batch)
    return torch.cat([mask, image], dim=1)


def _entry_channels(entry: CondEntry, samples: torch.Tensor, noise_mask: torch.Tensor | None,
                    latent_scale: float) -> torch.Tensor:
    mask = entry.concat_mask if entry.concat_mask is not None else noise_mask
    image = None if entry.concat_latent_image is None else entry.concat_latent_image.float() * latent_scale
    return inpaint_channels(samples, mask, image)


def with_inpaint_inputs(unet: torch.nn.Module, latent_scale: float, conditioning: Conditioning,
                        samples: torch.Tensor, noise_mask: torch.Tensor | None) -> Conditioning:
    """The conditioning with each entry's extra UNet input channels (`concat`) set, for a 9-channel UNet;
    unchanged for a plain one. `samples`: the latent being sampled, in the model's space."""
    channels = unet_in_channels(unet)
    if channels == LATENT_CHANNELS:
        return conditioning
    if channels != INPAINT_CHANNELS:
        raise ValueError(f"this UNet takes {channels} input channels; supported are {LATENT_CHANNELS} "
                         f"(plain models) and {INPAINT_CHANNELS} (inpainting models)")
    return tuple(e.with_(concat=_entry_channels(e, samples, noise_mask, latent_scale)) for e in conditioning)


def with_inpaint_guider(guider: Holder, unet: torch.nn.Module, latent_scale: float, samples: torch.Tensor,
                        noise_mask: torch.Tensor | None) -> Holder:
    """A guider (a frozen dataclass holding conditionings: CFGGuider's, DualCFGGuider's) whose every
    conditioning has its inpainting channels (`with_inpaint_inputs`); the guider itself for a plain UNet."""
    if unet_in_channels(unet) == LATENT_CHANNELS:
        return guider
    changes = {f.name: with_inpaint_inputs(unet, latent_scale, value, samples, noise_mask)
               for f in fields(guider)  # type: ignore[arg-type]
               if isinstance(value := getattr(guider, f.name), tuple) and value
               and all(isinstance(e, CondEntry) for e in value)}
    return replace(guider, **changes)  # type: ignore[type-var]
