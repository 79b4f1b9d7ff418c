"""InpaintModelConditioning: an image and mask prepared for inpainting models (9-channel UNets).

The conditioning carries the image with the masked region greyed out, encoded, and the mask; the
sampler hands both to the UNet as extra input channels (`nodes.conditioning.inpaint`). The latent is the
whole image encoded, with the mask as its noise mask unless `noise_mask` is off. VAEEncodeForInpaint,
the other way to feed an inpainting model, lives with the VAE nodes (nodes.vae_nodes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import CONDITIONING, IMAGE, LATENT, MASK, VAE, Boolean, Link
from nodes.conditioning.value import Conditioning
from nodes.models.handles import VaeHandle
from nodes.vae_nodes import crop_to_multiple_of_8, encode


def masked_pixels(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images [B, H, W, C] with the region where the rounded mask [B, 1, H, W] is 1 set to mid-grey."""
    keep = (1.0 - mask.round()).permute(0, 2, 3, 1)
    return (pixels[..., :3] - 0.5) * keep + 0.5


@node("InpaintModelConditioning", category="conditioning/inpaint",
      outputs=[Out(CONDITIONING, "positive"), Out(CONDITIONING, "negative"), Out(LATENT, "latent")])
class InpaintModelConditioning:
    """Prepares an image and mask for an inpainting model: the conditioning carries the masked image and
    the mask for the UNet, the latent is the image itself."""

    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    vae = Link(VAE)
    pixels = Link(IMAGE)
    mask = Link(MASK)
    noise_mask = Boolean(True, tooltip="Add a noise mask to the latent so sampling will only happen within the "
                                       "mask. Might improve results or completely break things depending on the "
                                       "model.")

    def run(self, ctx: RunContext, positive: Conditioning, negative: Conditioning, vae: VaeHandle,
            pixels: torch.Tensor, mask: torch.Tensor, noise_mask: bool) -> tuple:
        mask = F.interpolate(mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float(),
                             size=(pixels.shape[1], pixels.shape[2]), mode="bilinear")
        # Both cropped to multiples of 8 around the centre, as encoding crops the image.
        mask = crop_to_multiple_of_8(mask.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        concat_latent = encode(vae, masked_pixels(crop_to_multiple_of_8(pixels), mask))
        latent = {"samples": encode(vae, pixels)}
        if noise_mask:
            latent["noise_mask"] = mask
        positive, negative = (tuple(e.with_(concat_latent_image=concat_latent, concat_mask=mask) for e in side)
                              for side in (positive, negative))
        return (positive, negative, latent)
