"""Latent previews while sampling: TAESD's decoder when `models/vae_approx` has one for the family,
else a cheap linear map from the 4 latent channels to RGB.

The factors are the widely used approximations for SD1.x and SDXL latents (as in ComfyUI's
previews); decoding with the VAE every step would cost as much as a step itself, TAESD a fraction.
"""

from __future__ import annotations

import io

import torch
from PIL import Image

from engine.paths import Paths

SD1_FACTORS = torch.tensor([[0.3512, 0.2297, 0.3227],
                            [0.3250, 0.4974, 0.2350],
                            [-0.2829, 0.1762, 0.2721],
                            [-0.2120, -0.2616, -0.7177]])
SDXL_FACTORS = torch.tensor([[0.3651, 0.4232, 0.4341],
                             [-0.2533, -0.0042, 0.1068],
                             [0.1076, 0.1111, -0.0362],
                             [-0.3165, -0.2492, -0.2188]])
SDXL_BIAS = torch.tensor([0.1084, -0.0175, -0.0011])
MAX_PREVIEW_SIDE = 512


def latent_to_rgb(latent: torch.Tensor, sdxl: bool = False) -> torch.Tensor:
    """The first image of a [B, 4, h, w] latent (model space) as [h, w, 3] in 0..1."""
    factors, bias = (SDXL_FACTORS, SDXL_BIAS) if sdxl else (SD1_FACTORS, torch.zeros(3))
    rgb = torch.einsum("chw,cr->hwr", latent[0, :4].float().cpu(), factors) + bias
    return ((rgb + 1.0) / 2.0).clamp(0.0, 1.0)


def taesd_pixels(decoder: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
    """The first image of a [B, 4, h, w] latent (model space) decoded by TAESD, as [8h, 8w, 3] uint8
    (rounded, as ComfyUI's previews are)."""
    with torch.inference_mode():
        image = decoder(latent[:1, :4].float().cpu())[0]
    return ((image.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).permute(1, 2, 0)


def preview_jpeg(latent: torch.Tensor, sdxl: bool = False, paths: Paths | None = None, quality: int = 80) -> bytes:
    """A JPEG of the latent at image size (at most MAX_PREVIEW_SIDE a side): decoded by the family's TAESD
    when `paths` has one, else its approximate colours upscaled ×8 (bounded)."""
    from nodes.models.taesd import preview_decoder

    decoder = preview_decoder(paths, sdxl) if paths is not None else None
    if decoder is not None:
        picture = Image.fromarray(taesd_pixels(decoder, latent).numpy())
        picture.thumbnail((MAX_PREVIEW_SIDE, MAX_PREVIEW_SIDE), Image.Resampling.BILINEAR)
    else:
        picture = Image.fromarray((latent_to_rgb(latent, sdxl) * 255).to(torch.uint8).numpy())
        scale = max(1, min(8, MAX_PREVIEW_SIDE // max(picture.size)))
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
