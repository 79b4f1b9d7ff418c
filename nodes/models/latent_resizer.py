"""The latent resizer of Ttl/ComfyUi_NNLatentUpscale: a small conv net that upscales SD latents by 1–2×.

Its weights (`sd15_resizer.pt`, `sdxl_resizer.pt`) ship in the pack's repository; their key layout is
the pack's `LatentResizer` (latent_resizer.py): `conv_in`, a scale embedding (`embed.0`, `embed.2`),
`in_blocks.N` and `out_blocks.N` (residual blocks with the embedding added, and single-head
self-attention blocks, told apart by their `q` weights), a bilinear resize between the two stacks,
then `norm_out` and `conv_out`. This module rebuilds that network from the file's keys alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nodes.models.state_dict_files import load_state_dict

EMBED_DIM = 32     # the width of the scale embedding
NORM_GROUPS = 32   # every GroupNorm of the net


class LatentResizerFileError(ValueError):
    """A file that is not a latent resizer state dict; names the file."""


class ScaleResBlock(nn.Module):
    """GroupNorm → SiLU → conv, plus the projected scale embedding, GroupNorm → SiLU → conv, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(NORM_GROUPS, channels), nn.SiLU(),
                                       nn.Conv2d(channels, channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(EMBED_DIM, channels))
        # Index 2 is the pack's (inactive) dropout: keeping the slot keeps `out_layers.3` the conv's key.
        self.out_layers = nn.Sequential(nn.GroupNorm(NORM_GROUPS, channels), nn.SiLU(), nn.Identity(),
                                        nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb).to(x.dtype)[:, :, None, None]
        return x + self.out_layers(h)


class SelfAttentionBlock(nn.Module):
    """Single-head attention over all positions, channels as features (1×1 convs for q, k, v and out)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(NORM_GROUPS, channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)
        q, k, v = (layer(normed).flatten(2).transpose(1, 2) for layer in (self.q, self.k, self.v))
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(attended)


def _stack(state_dict: dict[str, torch.Tensor], prefix: str, channels: int) -> nn.ModuleList:
    """The blocks under `prefix.N`, in order: attention where the file has `prefix.N.q.weight`."""
    indices = sorted({int(key.split(".")[1]) for key in state_dict if key.startswith(prefix + ".")})
    return nn.ModuleList(SelfAttentionBlock(channels) if f"{prefix}.{i}.q.weight" in state_dict
                         else ScaleResBlock(channels) for i in indices)


class LatentResizer(nn.Module):
    """Latent [B, 4, H, W] → latent [B, 4, round(H·scale), round(W·scale)], for a scale in [1, 2]."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        channels = state_dict["conv_in.bias"].shape[0]
        self.conv_in = nn.Conv2d(4, channels, 3, padding=1)
        self.embed = nn.Sequential(nn.Linear(1, EMBED_DIM), nn.SiLU(), nn.Linear(EMBED_DIM, EMBED_DIM))
        self.in_blocks = _stack(state_dict, "in_blocks", channels)
        self.out_blocks = _stack(state_dict, "out_blocks", channels)
        self.norm_out = nn.GroupNorm(NORM_GROUPS, channels)
        self.conv_out = nn.Conv2d(channels, 4, 3, padding=1)
        self.load_state_dict(state_dict)
        self.eval()

    def _blocks(self, blocks: nn.ModuleList, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            x = block(x, emb) if isinstance(block, ScaleResBlock) else block(x)
        return x

    @torch.no_grad()
    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        size = (int(round(x.shape[-2] * scale)), int(round(x.shape[-1] * scale)))
        if size == tuple(x.shape[-2:]):   # the pack returns its input untouched when the size stays
            return x
        # The net is conditioned on the excess over 1×, one value for the whole batch.
        emb = self.embed(torch.tensor([[scale - 1.0]], dtype=x.dtype, device=x.device))
        h = self._blocks(self.in_blocks, self.conv_in(x), emb)
        h = F.interpolate(h, size=size, mode="bilinear")
        h = self._blocks(self.out_blocks, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def load_latent_resizer(path: Path) -> LatentResizer:
    """A resizer file (a `.pt` pickle as the pack ships it, or any state dict format we read), in fp32."""
    state_dict = load_state_dict(path)
    if "conv_in.bias" not in state_dict or "conv_out.weight" not in state_dict:
        raise LatentResizerFileError(f"{path.name} is not a latent resizer of NNLatentUpscale (no conv_in/conv_out)")
    try:
        return LatentResizer({key: value.float() for key, value in state_dict.items()})
    except (RuntimeError, KeyError, ValueError) as exc:
        raise LatentResizerFileError(f"{path.name}: its weights do not fit NNLatentUpscale's LatentResizer "
                                     f"({str(exc).splitlines()[0]})") from exc
