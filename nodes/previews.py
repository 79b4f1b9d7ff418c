"""Latent previews while sampling: TAESD's decoder when `models/vae_approx` has one for the family,
else a cheap linear map from the 4 latent channels to RGB.

The factors are the widely used approximations for SD1.x and SDXL latents (as in ComfyUI's
previews); decoding with the VAE every step would cost as much as a step itself, TAESD a fraction.
"""

from __future__ import annotations

import io
import time
from typing import Callable

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
        return _jpeg(Image.fromarray(taesd_pixels(decoder, latent).numpy()), taesd=True, quality=quality)
    return _jpeg(Image.fromarray((latent_to_rgb(latent, sdxl) * 255).to(torch.uint8).numpy()), quality=quality)


def _jpeg(picture: Image.Image, taesd: bool = False, quality: int = 80) -> bytes:
    """A decoded picture shrunk to MAX_PREVIEW_SIDE, or a latent-size one enlarged (×8 at most)."""
    if taesd:
        picture.thumbnail((MAX_PREVIEW_SIDE, MAX_PREVIEW_SIDE), Image.Resampling.BILINEAR)
    else:
        scale = max(1, min(8, MAX_PREVIEW_SIDE // max(picture.size)))
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# The share of a sampling run's time TAESD previews may take; past it, steps get the cheap preview.
TAESD_TIME_SHARE = 0.25


class Previewer:
    """The previews of one sampling run: TAESD decodes while they stay within `TAESD_TIME_SHARE`
    of the run's time (a 512 px decode costs seconds on a CPU), the cheap colour map otherwise."""

    def __init__(self, send: Callable[[str, bytes], None], sdxl: bool, paths: Paths | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from nodes.models.taesd import preview_decoder

        self.send = send
        self.sdxl = sdxl
        self.decoder = preview_decoder(paths, sdxl) if paths is not None else None
        self.clock = clock
        self.started = clock()
        self.decoding = 0.0

    def __call__(self, latent: torch.Tensor) -> None:
        started = self.clock()
        if self.decoder is not None and self.decoding <= TAESD_TIME_SHARE * (started - self.started):
            self.send("JPEG", _jpeg(Image.fromarray(taesd_pixels(self.decoder, latent).numpy()), taesd=True))
            self.decoding += self.clock() - started
        else:
            self.send("JPEG", preview_jpeg(latent, self.sdxl))
