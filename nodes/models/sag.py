"""Self-Attention Guidance (SAG), after ComfyUI's comfy_extras/nodes_sag.py.

While the UNet runs, the attention map of the middle block's first self-attention is recorded. After
CFG, the negative side's prediction is blurred where that map says the model attends most, noised
back to the current sigma, and run through the UNet again; the difference between the blurred
prediction and the model's answer to it, times `scale`, is added to the CFG result. Recording only
reads the attention's inputs, so the UNet's own output is unchanged by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.hooks import RemovableHandle

from nodes.models.unet_hooks import HookRun, hidden_states_of
from nodes.sampling.cfg import PostCfgArgs
from nodes.sampling.unet_call import current_unet_call

BLUR_KERNEL_SIZE = 9
ATTENTION_THRESHOLD = 1.0  # a token is "attended" when the queries give it more than one token's worth


def gaussian_blur_2d(image: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """`image` [B, C, H, W] convolved per channel with a normalised kernel_size² Gaussian, reflect-padded.

    sigma 0 gives the image back (ComfyUI's kernel would divide by zero there and give NaN)."""
    if sigma <= 0:
        return image
    half = (kernel_size - 1) * 0.5
    steps = torch.linspace(-half, half, steps=kernel_size)
    pdf = torch.exp(-0.5 * (steps / sigma).pow(2))
    kernel_1d = (pdf / pdf.sum()).to(device=image.device, dtype=image.dtype)
    channels = image.shape[-3]
    kernel = torch.outer(kernel_1d, kernel_1d).expand(channels, 1, kernel_size, kernel_size)
    pad = kernel_size // 2
    return F.conv2d(F.pad(image, [pad, pad, pad, pad], mode="reflect"), kernel, groups=channels)


def attention_mask(attention: torch.Tensor, latent_size: tuple[int, int],
                   threshold: float = ATTENTION_THRESHOLD) -> torch.Tensor:
    """[B, 1, H, W] 0/1 mask of the latent positions whose token the queries attend to more than
    `threshold` in total (heads averaged), from `attention` [B, heads, tokens, tokens].

    The token grid is the latent downsampled by the power of two ComfyUI derives from the token
    count; the mask is scaled back up by nearest-neighbour interpolation."""
    batch, _, tokens, _ = attention.shape
    height, width = latent_size
    attended = attention.mean(1).sum(1) > threshold
    ratio = 2 ** (math.ceil(math.sqrt(height * width / tokens)) - 1).bit_length()
    grid = (math.ceil(height / ratio), math.ceil(width / ratio))
    mask = attended.reshape(batch, 1, *grid).to(attention.dtype)
    return F.interpolate(mask, (height, width))


def degraded_prediction(denoised: torch.Tensor, attention: torch.Tensor, blur_sigma: float) -> torch.Tensor:
    """The prediction blurred where the attention mask is 1, unchanged elsewhere (ComfyUI's create_blur_map)."""
    mask = attention_mask(attention, tuple(denoised.shape[-2:])).to(denoised.dtype)  # type: ignore[arg-type]
    blurred = gaussian_blur_2d(denoised, BLUR_KERNEL_SIZE, blur_sigma)
    return blurred * mask + denoised * (1 - mask)


def attention_probabilities(attention: Any, hidden: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ·scale) of a diffusers self-attention for its input `hidden`, as [B, heads, tokens, tokens]."""
    batch, tokens, _ = hidden.shape
    heads = attention.heads
    q = attention.to_q(hidden).float().reshape(batch, tokens, heads, -1).transpose(1, 2)
    k = attention.to_k(hidden).float().reshape(batch, tokens, heads, -1).transpose(1, 2)
    return (q @ k.transpose(-1, -2) * attention.scale).softmax(dim=-1)


@dataclass(eq=False)
class MiddleAttentionRecorder:
    """A UnetHook that keeps the middle block's first self-attention map of the negative side, from
    the last UNet call that ran it (as ComfyUI records it: positive-only passes, such as PAG's,
    leave it as it was)."""

    attention: torch.Tensor | None = field(default=None, repr=False)

    def attach(self, unet: torch.nn.Module, run: HookRun) -> list[RemovableHandle]:
        self.attention = None
        middle: Any = unet.mid_block
        attention = middle.attentions[0].transformer_blocks[0].attn1

        def record(module, args, kwargs, _output):
            call = current_unet_call()
            if call is None or 1 not in call.cond_or_uncond:
                return
            hidden = hidden_states_of(args, kwargs)
            rows = hidden.shape[0] // len(call.cond_or_uncond)
            start = call.cond_or_uncond.index(1) * rows
            with torch.no_grad():
                self.attention = attention_probabilities(module, hidden[start:start + rows])

        return [attention.register_forward_hook(record, with_kwargs=True)]


@dataclass(frozen=True, eq=False)
class SelfAttentionGuidanceTerm:
    """SAG after CFG: result + (blurred negative prediction - the model's prediction from it) · scale."""

    scale: float
    blur_sigma: float
    recorder: MiddleAttentionRecorder

    def __call__(self, args: PostCfgArgs) -> torch.Tensor:
        if min(args.denoised.shape[2:]) <= 4:  # too small to pad for the blur (ComfyUI skips it too)
            return args.denoised
        uncond = args.uncond_denoised
        if uncond is None:  # cfg 1 skipped the negative side; SAG needs it (ComfyUI disables that shortcut)
            if args.denoiser.negative is None:
                return args.denoised
            uncond = args.denoiser.negative_denoised(args.x, args.sigma)
        attention = self.recorder.attention
        if attention is None:
            raise RuntimeError("SelfAttentionGuidance: the negative side's attention was not recorded "
                               "(the model's hooks are attached while KSampler runs)")
        degraded = degraded_prediction(uncond, attention, self.blur_sigma)
        answer = args.denoiser.negative_denoised(degraded + args.x - uncond, args.sigma)
        return args.denoised + (degraded - answer) * self.scale
