"""Self-attention patches: HyperTile and ToMe (faster on large latents) and PAG's perturbation.

Each follows ComfyUI's node of the same name (comfy_extras/nodes_hypertile.py, nodes_tomesd.py,
nodes_pag.py) at the same point: the normalised hidden states entering a transformer block's
self-attention, and its output. Randomness (which tile split, which token stays) comes from a
generator restarted for every sampling run instead of Python's or torch's global one, so a seed
gives the same image on every run; ComfyUI's HyperTile counter runs on across runs instead.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch
from torch.utils.hooks import RemovableHandle

from nodes.models.unet_hooks import HookRun, attention_hooks, hidden_states_of, model_channels, self_attentions

Transform = Callable[[torch.Tensor], torch.Tensor]


def _unchanged(x: torch.Tensor) -> torch.Tensor:
    return x


# --- HyperTile ------------------------------------------------------------------------------------------

def random_divisor(value: int, min_value: int, max_options: int, counter: int) -> int:
    """A tile count for `value` tokens: value // d for one of the `max_options` smallest divisors
    d >= min_value, picked by Python's generator seeded with `counter` (as ComfyUI picks it)."""
    smallest = min(min_value, value)
    divisors = [d for d in range(smallest, value + 1) if value % d == 0][:max_options]
    return value // divisors[random.Random(counter).randint(0, len(divisors) - 1)]


@lru_cache(maxsize=256)
def token_grid(tokens: int, aspect_ratio: float) -> tuple[int, int]:
    """(h, w) with h·w = tokens, near the latent's aspect ratio (width / height).

    ComfyUI's formula, kept on purpose: h comes out as the longer side for wide images, so tiles of
    non-square latents are bands rather than squares; attention stays within a partition either way.
    """
    h, w = round(math.sqrt(tokens * aspect_ratio)), round(math.sqrt(tokens / aspect_ratio))
    if h * w == tokens:
        return h, w
    if (tokens / h).is_integer():
        return h, tokens // h
    if (tokens / w).is_integer():
        return tokens // w, w
    pairs = [(d, tokens // d) for d in range(2, tokens + 1) if tokens % d == 0]
    return min(pairs, key=lambda p: abs(p[1] / p[0] - aspect_ratio))


def to_tiles(x: torch.Tensor, nh: int, nw: int, h: int, w: int) -> torch.Tensor:
    """[B, h·w, C] tokens → [B·nh·nw, (h/nh)·(w/nw), C]: one batch item per tile."""
    b, _, c = x.shape
    th, tw = h // nh, w // nw
    return x.reshape(b, nh, th, nw, tw, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nh * nw, th * tw, c)


def from_tiles(x: torch.Tensor, nh: int, nw: int, h: int, w: int) -> torch.Tensor:
    """The inverse of `to_tiles`."""
    c = x.shape[-1]
    th, tw = h // nh, w // nw
    return x.reshape(-1, nh, nw, th, tw, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, h * w, c)


@dataclass(frozen=True)
class HyperTileHook:
    """Self-attention within tiles of about `tile_size` pixels at the levels up to `max_depth`."""

    tile_size: int
    swap_size: int
    max_depth: int
    scale_depth: bool

    def attach(self, unet: torch.nn.Module, run: HookRun) -> list[RemovableHandle]:
        channels = model_channels(unet)
        levels = {channels * 2**depth for depth in range(self.max_depth + 1)}
        latent_tile = max(32, self.tile_size) // 8
        state: dict = {"counter": 1, "tiles": None}

        def before(q: torch.Tensor) -> torch.Tensor | None:
            if q.shape[-1] not in levels:
                return None
            shape = run.input_shape
            h, w = token_grid(q.shape[1], shape[-1] / shape[-2])
            factor = 2 ** (q.shape[-1] // channels - 1) if self.scale_depth else 1
            nh = random_divisor(h, latent_tile * factor, self.swap_size, state["counter"])
            nw = random_divisor(w, latent_tile * factor, self.swap_size, state["counter"] + 1)
            state["counter"] += 2
            if nh * nw <= 1:
                return None
            state["tiles"] = (nh, nw, h, w)
            return to_tiles(q, nh, nw, h, w)

        def after(out: torch.Tensor) -> torch.Tensor:
            tiles, state["tiles"] = state["tiles"], None
            return out if tiles is None else from_tiles(out, *tiles)

        return attention_hooks([a for _, a in self_attentions(unet)], before, after)


# --- ToMe -----------------------------------------------------------------------------------------------

def bipartite_soft_matching(metric: torch.Tensor, w: int, h: int, sx: int, sy: int, r: int,
                            generator: torch.Generator) -> tuple[Transform, Transform]:
    """(merge, unmerge) for `r` of the [B, h·w, C] tokens, after tomesd (ToMe for Stable Diffusion).

    One token of each sy×sx cell, chosen at random, is a destination; every other token is a source.
    The r sources most similar (cosine) to their best destination are averaged into it; `unmerge`
    gives each merged source its destination's value back, restoring the token count.
    """
    batch, tokens, _ = metric.shape
    if r <= 0 or w == 1 or h == 1:
        return _unchanged, _unchanged
    cells_y, cells_x = h // sy, w // sx
    choice = torch.randint(sy * sx, (cells_y, cells_x), generator=generator)
    is_dst = torch.zeros(h, w, dtype=torch.bool)
    rows = torch.arange(cells_y)[:, None] * sy + choice // sx
    cols = torch.arange(cells_x)[None, :] * sx + choice % sx
    is_dst[rows, cols] = True
    flat = is_dst.flatten().to(metric.device)
    dst_idx, src_idx = flat.nonzero().squeeze(1), (~flat).nonzero().squeeze(1)
    with torch.no_grad():
        unit = metric / metric.norm(dim=-1, keepdim=True)
        scores = unit[:, src_idx] @ unit[:, dst_idx].transpose(-1, -2)
        r = min(r, src_idx.numel())
        best, best_dst = scores.max(dim=-1)
        order = best.argsort(dim=-1, descending=True)
        merged, kept = order[:, :r], order[:, r:]
        target = best_dst.gather(-1, merged)

    def pick(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))

    def merge(x: torch.Tensor) -> torch.Tensor:
        src, dst = x[:, src_idx], x[:, dst_idx]
        dst = dst.scatter_reduce(1, target[..., None].expand(-1, -1, x.shape[-1]), pick(src, merged), reduce="mean")
        return torch.cat([pick(src, kept), dst], dim=1)

    def unmerge(x: torch.Tensor) -> torch.Tensor:
        n_kept = kept.shape[1]
        kept_values, dst = x[:, :n_kept], x[:, n_kept:]
        out = x.new_zeros(batch, tokens, x.shape[-1])
        out[:, dst_idx] = dst
        c = x.shape[-1]
        out.scatter_(1, src_idx[kept][..., None].expand(-1, -1, c), kept_values)
        out.scatter_(1, src_idx[merged][..., None].expand(-1, -1, c), pick(dst, target))
        return out

    return merge, unmerge


@dataclass(frozen=True)
class TokenMergingHook:
    """ToMe: `ratio` of the tokens merged before each full-resolution self-attention, unmerged after."""

    ratio: float
    seed: int = 0

    def attach(self, unet: torch.nn.Module, run: HookRun) -> list[RemovableHandle]:
        generator = torch.Generator().manual_seed(self.seed)
        state: dict = {"unmerge": _unchanged}

        def before(q: torch.Tensor) -> torch.Tensor | None:
            height, width = run.input_shape[-2:]
            downsample = math.ceil(math.sqrt((height * width) // q.shape[1]))
            if downsample > 1:  # only the full-resolution level, as ComfyUI's max_downsample = 1
                state["unmerge"] = _unchanged
                return None
            merge, state["unmerge"] = bipartite_soft_matching(
                q, math.ceil(width / downsample), math.ceil(height / downsample), 2, 2, int(q.shape[1] * self.ratio),
                generator)
            return merge(q)

        def after(out: torch.Tensor) -> torch.Tensor:
            return state["unmerge"](out)

        return attention_hooks([a for _, a in self_attentions(unet)], before, after)


# --- PAG ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IdentityAttentionHook:
    """The middle block's self-attentions with their attention map replaced by the identity: each
    token attends only to itself, so the output is to_out(to_v(x)) (PAG's perturbed pass)."""

    block_prefix: str = "mid_block."

    def attach(self, unet: torch.nn.Module, run: HookRun) -> list[RemovableHandle]:
        def identity(module, args, kwargs, _output):
            return module.to_out[1](module.to_out[0](module.to_v(hidden_states_of(args, kwargs))))

        return [attention.register_forward_hook(identity, with_kwargs=True)
                for name, attention in self_attentions(unet) if name.startswith(self.block_prefix)]
