"""FreeU (v1 and v2): rescale the UNet's decoder features and damp the low frequencies of its skips.

As ComfyUI does it (comfy_extras/nodes_freelunch.py): at every output block whose hidden state has
4× or 2× the first level's channels, the first half of the hidden state's channels is multiplied by
b1 or b2 (v2: by a factor between 1 and b that follows the normalised channel mean), and the skip
connection goes through `fourier_filter` with s1 or s2. The levels are chosen by channel count, not
by position, so this is not diffusers' `enable_freeu` (which scales the first two up blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.hooks import RemovableHandle

from nodes.models.unet_hooks import HookRun, model_channels, output_block_resnets, split_input_hook


def fourier_filter(x: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """`x` [B, C, H, W] with the centred (2·threshold)² square of its shifted 2-D spectrum scaled.

    For an even size that square holds the frequencies -threshold..threshold-1 of each axis (so a
    cosine's +1 half is kept while its -1 half is scaled, as in FreeU's reference). Computed in
    float32, returned in x's dtype.
    """
    spectrum = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    height, width = spectrum.shape[-2:]
    mask = torch.ones(spectrum.shape[-2:], device=x.device)
    row, col = height // 2, width // 2
    mask[row - threshold:row + threshold, col - threshold:col + threshold] = scale
    filtered = torch.fft.ifftn(torch.fft.ifftshift(spectrum * mask, dim=(-2, -1)), dim=(-2, -1)).real
    return filtered.to(x.dtype)


@dataclass(frozen=True)
class FreeUHook:
    """The FreeU patch with its four factors; `version` 2 scales by the normalised channel mean."""

    b1: float
    b2: float
    s1: float
    s2: float
    version: int = 1

    def scale_hidden(self, h: torch.Tensor, b: float) -> torch.Tensor:
        half = h.shape[1] // 2
        if self.version == 1:
            factor: torch.Tensor | float = b
        else:
            mean = h.mean(1, keepdim=True)
            flat = mean.reshape(mean.shape[0], -1)
            low = flat.min(dim=-1).values[:, None, None, None]
            high = flat.max(dim=-1).values[:, None, None, None]
            factor = (b - 1) * ((mean - low) / (high - low)) + 1
        return torch.cat([h[:, :half] * factor, h[:, half:]], dim=1)

    def patch(self, h: torch.Tensor, skip: torch.Tensor, scales: dict[int, tuple[float, float]]):
        scale = scales.get(int(h.shape[1]))
        if scale is None:
            return h, skip
        return self.scale_hidden(h, scale[0]), fourier_filter(skip, threshold=1, scale=scale[1])

    def attach(self, unet: torch.nn.Module, run: HookRun) -> list[RemovableHandle]:
        channels = model_channels(unet)
        scales = {channels * 4: (self.b1, self.s1), channels * 2: (self.b2, self.s2)}
        return [resnet.register_forward_pre_hook(
                    split_input_hook(h_channels, lambda h, skip: self.patch(h, skip, scales)), with_kwargs=True)
                for resnet, h_channels in output_block_resnets(unet)]
