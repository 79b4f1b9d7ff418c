"""Cheap latent previews while sampling: a linear map from the 4 latent channels to RGB.

The factors are the widely used approximations for SD1.x and SDXL latents (as in ComfyUI's
previews); decoding with the VAE every step would cost as much as a step itself.
"""

from __future__ import annotations

import io

import torch
from PIL import Image

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


def preview_jpeg(latent: torch.Tensor, sdxl: bool = False, quality: int = 80) -> bytes:
    """A JPEG of the latent's approximate colours, upscaled ×8 (bounded) to image size."""
    rgb = (latent_to_rgb(latent, sdxl) * 255).to(torch.uint8).numpy()
    picture = Image.fromarray(rgb)
    scale = max(1, min(8, MAX_PREVIEW_SIDE // max(picture.size)))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
