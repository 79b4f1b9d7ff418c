"""VAE nodes: latents to images and back (whole, tiled, and for inpainting).

LATENT samples are kept in the VAE's own latent space (as in ComfyUI); the sampler applies the
model's scaling factor on the way in and out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import IMAGE, LATENT, MASK, VAE, Int, Link
from nodes.models.handles import VaeHandle


def _module_dtype(module: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    param = next(module.parameters())
    return param.device, param.dtype


@torch.no_grad()
def decode(vae: VaeHandle, samples: torch.Tensor) -> torch.Tensor:
    """Latents [B, 4, h, w] → images [B, 8h, 8w, 3] in 0..1."""
    device, dtype = _module_dtype(vae.vae)
    images = vae.vae.decode(samples.to(device, dtype)).sample  # type: ignore[operator]  # an nn.Module method
    return ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu()


def crop_to_multiple_of_8(images: torch.Tensor) -> torch.Tensor:
    """Centre-crop [B, H, W, ...] down to sides that are multiples of 8, as ComfyUI does."""
    height, width = (images.shape[1] // 8) * 8, (images.shape[2] // 8) * 8
    top, left = (images.shape[1] % 8) // 2, (images.shape[2] % 8) // 2
    return images[:, top:top + height, left:left + width]


@torch.no_grad()
def encode(vae: VaeHandle, pixels: torch.Tensor) -> torch.Tensor:
    """Images [B, H, W, C] in 0..1 → latents (the posterior mean, so encoding is deterministic).

    Sizes that are not multiples of 8 are centre-cropped down to one, as ComfyUI does.
    """
    pixels = crop_to_multiple_of_8(pixels)[..., :3]
    device, dtype = _module_dtype(vae.vae)
    x = pixels.permute(0, 3, 1, 2).to(device, dtype) * 2.0 - 1.0
    return vae.vae.encode(x).latent_dist.mean.float().cpu()  # type: ignore[operator]  # an nn.Module method


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


@torch.no_grad()
def decode_tiled(vae: VaeHandle, samples: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Decode in overlapping latent tiles blended with linear ramps, bounding peak memory."""
    tile_l, overlap_l = max(tile // 8, 8), max(overlap // 8, 0)
    overlap_l = min(overlap_l, tile_l // 2)
    _, _, h, w = samples.shape
    out = torch.zeros(samples.shape[0], h * 8, w * 8, 3)
    weight = torch.zeros(1, h * 8, w * 8, 1)
    for y in _tile_starts(h, tile_l, overlap_l):
        for x in _tile_starts(w, tile_l, overlap_l):
            part = decode(vae, samples[:, :, y:y + tile_l, x:x + tile_l])
            ph, pw = part.shape[1], part.shape[2]
            ramp_y = _ramp(ph, overlap_l * 8, y > 0, y + tile_l < h)
            ramp_x = _ramp(pw, overlap_l * 8, x > 0, x + tile_l < w)
            mask = (ramp_y[:, None] * ramp_x[None, :])[None, :, :, None]
            out[:, y * 8:y * 8 + ph, x * 8:x * 8 + pw] += part * mask
            weight[:, y * 8:y * 8 + ph, x * 8:x * 8 + pw] += mask
    return out / weight.clamp(min=1e-6)


def _ramp(length: int, overlap: int, fade_in: bool, fade_out: bool) -> torch.Tensor:
    ramp = torch.ones(length)
    if overlap > 0:
        edge = torch.linspace(1.0 / (overlap + 1), 1.0, overlap)
        if fade_in:
            ramp[:overlap] = edge
        if fade_out:
            ramp[-overlap:] = edge.flip(0)
    return ramp


@node("VAEDecode", display_name="VAE Decode", category="latent", outputs=[Out(IMAGE, "IMAGE")])
class VAEDecode:
    """Decodes latents into images."""

    samples = Link(LATENT)
    vae = Link(VAE)

    def run(self, ctx: RunContext, samples: dict, vae: VaeHandle) -> tuple:
        return (decode(vae, samples["samples"]),)


@node("VAEDecodeTiled", display_name="VAE Decode (Tiled)", category="_for_testing", outputs=[Out(IMAGE, "IMAGE")])
class VAEDecodeTiled:
    """Decodes latents tile by tile, for large images on little memory."""

    samples = Link(LATENT)
    vae = Link(VAE)
    tile_size = Int(512, min=64, max=4096, step=32)
    overlap = Int(64, min=0, max=4096, step=32)

    def run(self, ctx: RunContext, samples: dict, vae: VaeHandle, tile_size: int, overlap: int) -> tuple:
        return (decode_tiled(vae, samples["samples"], tile_size, overlap),)


@node("VAEEncode", display_name="VAE Encode", category="latent", outputs=[Out(LATENT, "LATENT")])
class VAEEncode:
    """Encodes images into latents."""

    pixels = Link(IMAGE)
    vae = Link(VAE)

    def run(self, ctx: RunContext, pixels: torch.Tensor, vae: VaeHandle) -> tuple:
        return ({"samples": encode(vae, pixels)},)


@node("VAEEncodeForInpaint", display_name="VAE Encode (for Inpainting)", category="latent/inpaint",
      outputs=[Out(LATENT, "LATENT")])
class VAEEncodeForInpaint:
    """Encodes an image with the masked region greyed out, and marks that region for regeneration."""

    pixels = Link(IMAGE)
    vae = Link(VAE)
    mask = Link(MASK)
    grow_mask_by = Int(6, min=0, max=64, step=1)

    def run(self, ctx: RunContext, pixels: torch.Tensor, vae: VaeHandle, mask: torch.Tensor,
            grow_mask_by: int) -> tuple:
        mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
        mask = F.interpolate(mask, size=(pixels.shape[1], pixels.shape[2]), mode="bilinear")
        pixels = crop_to_multiple_of_8(pixels)[..., :3].clone()
        mask = crop_to_multiple_of_8(mask.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        height, width = pixels.shape[1], pixels.shape[2]
        if grow_mask_by > 0:
            kernel = torch.ones(1, 1, grow_mask_by, grow_mask_by)
            grown = F.conv2d(mask.round(), kernel, padding=grow_mask_by // 2).clamp(0, 1)
            grown = grown[:, :, :height, :width]
        else:
            grown = mask.round()  # ComfyUI's noise mask is 0/1 whatever grow_mask_by
        keep = (1.0 - mask.round()).permute(0, 2, 3, 1)
        pixels = (pixels - 0.5) * keep + 0.5
        return ({"samples": encode(vae, pixels), "noise_mask": grown},)
