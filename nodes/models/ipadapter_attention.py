"""IP-Adapter's decoupled cross-attention as a UNet hook: each cross-attention also attends to the
image tokens through the adapter's own to_k_ip / to_v_ip, and adds that (weighted) to its output.

The same computation as diffusers' `IPAdapterAttnProcessor2_0` (the image attention added before
to_out) and cubiq's `ipadapter_attention`: weight types, start/end as sigmas, embeds scaling and the
attention mask follow the pack. Hooks are attached while sampling only (`unet_hooks`); the positive
chunks of the batch get the image tokens, the negative ones the uncond tokens (`sampling.unet_call`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from torch.utils.hooks import RemovableHandle

from nodes.models.ipadapter_model import IPAdapterWeights
from nodes.models.unet_hooks import HookRun, hidden_states_of
from nodes.sampling.schedule import ModelSampling
from nodes.sampling.unet_call import current_unet_call

WEIGHT_TYPES = ["linear", "ease in", "ease out", "ease in-out", "reverse in-out", "weak input", "weak output",
                "weak middle", "strong middle", "style transfer", "composition", "strong style transfer",
                "style and composition", "style transfer precise", "composition precise"]
EMBEDS_SCALING = ["V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty"]
NO_SIGMA = 999999999.9  # ComfyUI's sigma when none is known, and percent_to_sigma(0)


def percent_to_sigma(model_sampling: ModelSampling, percent: float) -> float:
    """ComfyUI's ModelSampling.percent_to_sigma: 0 → above every sigma, 1 → 0, else sigma at (1 - p)·999."""
    if percent <= 0.0:
        return NO_SIGMA
    if percent >= 1.0:
        return 0.0
    return float(model_sampling.sigma(torch.tensor((1.0 - percent) * 999.0)))


def layer_weights(weight: float, weight_type: str, is_sdxl: bool, weight_composition: float | None = None
                  ) -> float | dict[int, float]:
    """The pack's per-transformer weights for the layer-selecting types (keys: transformer index),
    else the plain weight."""
    w, c = weight, weight if weight_composition is None else weight_composition
    sd15_style = (0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15)
    if weight_type == "style transfer":
        return {6: w} if is_sdxl else {i: w for i in sd15_style}
    if weight_type == "composition":
        return {3: w} if is_sdxl else {4: w * 0.25, 5: w}
    if weight_type == "strong style transfer":
        keep = (0, 1, 2, 4, 5, 6, 7, 8, 9, 10) if is_sdxl else (0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        return {i: w for i in keep}
    if weight_type in ("style and composition", "style transfer precise"):
        return {3: c, 6: w} if is_sdxl else {**{i: w for i in sd15_style}, 4: c * 0.25, 5: c}
    if weight_type == "strong style and composition":
        if is_sdxl:
            return {**{i: w for i in range(11)}, 3: c}
        return {**{i: w for i in range(16)}, 4: c, 5: c}
    if weight_type == "composition precise":
        if is_sdxl:
            return {**{i: w * 0.1 for i in range(11)}, 3: c, 6: w}
        return {**{i: w for i in range(16)}, 4: c * 0.25, 5: c, 6: w * 0.1, 7: w * 0.1, 8: w * 0.1}
    return w


def transformer_weight(weight: float | dict[int, float], weight_type: str, t_idx: int, layers: int,
                       block_type: str) -> float | None:
    """The weight at one spatial transformer (`t_idx` in forward order; block_type input/middle/output),
    None where the adapter is off there: the pack's formulas."""
    if isinstance(weight, dict):
        return weight.get(t_idx)
    if weight_type == "ease in":
        return weight * (0.05 + 0.95 * (1 - t_idx / layers))
    if weight_type == "ease out":
        return weight * (0.05 + 0.95 * (t_idx / layers))
    if weight_type == "ease in-out":
        return weight * (0.05 + 0.95 * (1 - abs(t_idx - layers / 2) / (layers / 2)))
    if weight_type == "reverse in-out":
        return weight * (0.05 + 0.95 * (abs(t_idx - layers / 2) / (layers / 2)))
    weak = {"weak input": ("input",), "weak middle": ("middle",), "weak output": ("output",),
            "strong middle": ("input", "output")}
    if block_type in weak.get(weight_type, ()):
        return weight * 0.2
    return weight


def swaps_cond(weight_type: str, t_idx: int, layers: int) -> bool:
    """The precise types give some transformers the image as uncond and nothing as cond."""
    composition = {3} if layers == 11 else {4, 5}
    if weight_type == "style transfer precise":
        return t_idx in composition
    if weight_type == "composition precise":
        return t_idx not in composition
    return False


@dataclass(frozen=True)
class CrossAttentionSite:
    """One cross-attention: its adapter number (diffusers' module order), its spatial transformer's
    index in forward order and its block type."""

    module: torch.nn.Module
    number: int
    t_idx: int
    block_type: str


def cross_attention_sites(unet: Any) -> list[CrossAttentionSite]:
    """Every cross-attention of the UNet, numbered as the adapter files number them."""
    levels = [("input", list(unet.down_blocks)), ("middle", [unet.mid_block]), ("output", list(unet.up_blocks))]
    transformers: dict[int, tuple[int, str]] = {}
    for block_type, blocks in levels:  # forward order: ComfyUI's transformer_index
        for block in blocks:
            for transformer in getattr(block, "attentions", None) or ():
                transformers[id(transformer)] = (len(transformers), block_type)
    sites: list[CrossAttentionSite] = []
    for _, module in unet.named_modules():  # registration order: down, up, mid (the files' numbering)
        if id(module) in transformers:
            t_idx, block_type = transformers[id(module)]
            for block in module.transformer_blocks:
                if isinstance(block, BasicTransformerBlock) and block.attn2 is not None:
                    sites.append(CrossAttentionSite(block.attn2, len(sites), t_idx, block_type))
    return sites


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    b = q.shape[0]
    q, k, v = (t.reshape(b, t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, heads * q.shape[-1])


def _to_size(t: torch.Tensor, size: int) -> torch.Tensor:
    """The pack's tensor_to_size: repeat the last item, or cut, to `size` items."""
    if t.shape[0] < size:
        return torch.cat([t, t[-1:].repeat(size - t.shape[0], *([1] * (t.ndim - 1)))])
    return t[:size]


def _mask_tokens(mask: torch.Tensor, seq_len: int, shape: tuple[int, ...], batch: int, chunks: int,
                 channels: int) -> torch.Tensor:
    """The attention mask at this layer's token grid, as the pack sizes it (padded or cropped)."""
    oh, ow = shape[-2], shape[-1]
    mask_h = oh / math.sqrt(oh * ow / seq_len)
    mask_h = int(mask_h) + int((seq_len % int(mask_h)) != 0)
    mask_w = seq_len // mask_h
    mask = F.interpolate(mask.unsqueeze(1), size=(mask_h, mask_w), mode="bilinear").squeeze(1)
    mask = _to_size(mask, batch).repeat(chunks, 1, 1)
    mask = mask.reshape(mask.shape[0], -1, 1).repeat(1, 1, channels)
    length = mask_h * mask_w
    if length < seq_len:
        pad = seq_len - length
        mask = F.pad(mask, (0, 0, pad // 2, pad - pad // 2), value=0.0)
    elif length > seq_len:
        start = (length - seq_len) // 2
        mask = mask[:, start:start + seq_len, :]
    return mask


@dataclass(frozen=True)
class IPAdapterHook:
    """One applied IP-Adapter: image tokens for the positive and negative sides, and how strongly and
    where they act. Chained IPAdapter nodes each add their own hook; their outputs add up."""

    weights: IPAdapterWeights
    cond: torch.Tensor  # [N, T, C] projected image tokens
    uncond: torch.Tensor
    weight: float | dict[int, float] = 1.0
    weight_type: str = "linear"
    sigma_start: float = NO_SIGMA
    sigma_end: float = 0.0
    embeds_scaling: str = "V only"
    mask: torch.Tensor | None = None
    unfold_batch: bool = False

    def attach(self, unet: torch.nn.Module, run: HookRun) -> list[RemovableHandle]:
        param = next(unet.parameters())  # placed once per sampling run, not per call

        def place(t: torch.Tensor) -> torch.Tensor:
            return t.to(param.device, param.dtype)

        placed = replace(self, cond=place(self.cond), uncond=place(self.uncond),
                         mask=None if self.mask is None else place(self.mask))
        handles = []
        for site in cross_attention_sites(unet):
            k_ip, v_ip = (place(w) for w in self.weights.kv(site.number))
            handles.append(site.module.register_forward_hook(placed._hook(site, k_ip, v_ip, run), with_kwargs=True))
        return handles

    def _hook(self, site: CrossAttentionSite, k_ip: torch.Tensor, v_ip: torch.Tensor, run: HookRun):
        def post(module, args, kwargs, output):
            call = current_unet_call()
            sigma = call.sigma if call is not None else NO_SIGMA
            if not (self.sigma_end <= sigma <= self.sigma_start):
                return output
            hidden = hidden_states_of(args, kwargs)
            added = self.image_attention(module, hidden, k_ip, v_ip, site, call.cond_or_uncond if call else (0,),
                                         run.input_shape)
            return output if added is None else output + F.linear(added, module.to_out[0].weight)
        return post

    def image_attention(self, attn: Any, hidden: torch.Tensor, k_ip: torch.Tensor, v_ip: torch.Tensor,
                        site: CrossAttentionSite, cond_or_uncond: tuple[int, ...], input_shape: tuple[int, ...]
                        ) -> torch.Tensor | None:
        """The weighted image attention of this layer, before to_out (None: nothing to add)."""
        layers = self.weights.layers
        weight = transformer_weight(self.weight, self.weight_type, site.t_idx, layers, site.block_type)
        if weight is None or weight == 0:
            return None
        cond, uncond = self.cond, self.uncond
        if isinstance(self.weight, dict) and swaps_cond(self.weight_type, site.t_idx, layers):
            cond, uncond = cond * 0, cond
        q = attn.to_q(hidden)
        dtype = q.dtype
        batch = q.shape[0] // len(cond_or_uncond)
        k_w, v_w = k_ip.to(q.device, dtype), v_ip.to(q.device, dtype)

        def side(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            tokens = tokens.to(q.device, dtype)
            if self.unfold_batch:
                tokens = _to_size(tokens, batch)
                return F.linear(tokens, k_w), F.linear(tokens, v_w)
            return F.linear(tokens, k_w).repeat(batch, 1, 1), F.linear(tokens, v_w).repeat(batch, 1, 1)

        sides = (side(cond), side(uncond))
        ip_k = torch.cat([sides[i][0] for i in cond_or_uncond])
        ip_v = torch.cat([sides[i][1] for i in cond_or_uncond])
        w: float = weight
        if self.embeds_scaling == "K+mean(V) w/ C penalty":
            w = w * ip_k.shape[2] / 1280.0
            mean = ip_v.mean(dim=1, keepdim=True)
            out = _attention(q, ip_k * w, (ip_v - mean) + mean * w, attn.heads)
        elif self.embeds_scaling == "K+V w/ C penalty":
            w = w * ip_k.shape[2] / 1280.0
            out = _attention(q, ip_k * w, ip_v * w, attn.heads)
        elif self.embeds_scaling == "K+V":
            out = _attention(q, ip_k * w, ip_v * w, attn.heads)
        else:
            out = _attention(q, ip_k, ip_v, attn.heads) * w
        if self.mask is not None:
            out = out * _mask_tokens(self.mask.to(q.device, dtype), q.shape[1], input_shape, batch,
                                     len(cond_or_uncond), out.shape[2])
        return out
