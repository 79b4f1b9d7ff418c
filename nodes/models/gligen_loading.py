"""GLIGEN: gated self-attention that places prompts in boxes, after ComfyUI's comfy/gligen.py.

A GLIGEN file (`models/gligen`, e.g. gligen_sd14_textbox_pruned) holds one gated self-attention block
per UNet transformer block (keys `…{input_blocks|middle_block|output_blocks}.N.….fuser.…`, taken in
that order, as ComfyUI does) and a position net that turns each box (its pooled prompt and Fourier
features of its corners) into a grounding token. Both are diffusers' own modules
(`GatedSelfAttentionDense`, `GLIGENTextBoundingboxProjection`), whose parameter names are the file's.

While the UNet runs, each transformer block's hidden state after its self-attention (residual added)
goes through its gated block, for the batch rows of the conditioning that carries the boxes only:
ComfyUI runs the other side without GLIGEN. Hooks cannot reach the block's local residual sum, so the
self-attention's output is replaced by fused - residual, which the block adds back.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from diffusers.models.attention import BasicTransformerBlock, GatedSelfAttentionDense
from diffusers.models.embeddings import GLIGENTextBoundingboxProjection

from nodes.models.state_dict_files import CheckpointFileError, load_state_dict
from nodes.models.unet_hooks import hidden_states_of

MAX_OBJECTS = 30  # the grounding tokens per image GLIGEN was trained with (ComfyUI's max_objs)
SECTIONS = ("input_blocks", "middle_block", "output_blocks")


def transformer_blocks_in_order(unet: Any) -> list[BasicTransformerBlock]:
    """The UNet's transformer blocks in the order it runs them: down blocks, middle, up blocks
    (ComfyUI's transformer_index; `named_modules` lists the up blocks before the middle one)."""
    found: list[BasicTransformerBlock] = []
    for block in (*unet.down_blocks, unet.mid_block, *unet.up_blocks):
        for attention in getattr(block, "attentions", None) or ():
            found.extend(m for m in attention.modules() if isinstance(m, BasicTransformerBlock))
    return found


@dataclass(frozen=True, eq=False)
class GligenModel:
    """A loaded GLIGEN file: its position net and its gated blocks' weights, in transformer-block order.
    The blocks are built per UNet (their head count is the UNet's, which the weights do not record)."""

    position_net: GLIGENTextBoundingboxProjection
    block_weights: tuple[dict[str, torch.Tensor], ...]
    key_dim: int
    source: str
    built: dict = field(default_factory=dict, repr=False)

    def gated_blocks(self, blocks: list[BasicTransformerBlock],
                     parameter: torch.Tensor) -> list[GatedSelfAttentionDense]:
        if len(blocks) != len(self.block_weights):
            raise ValueError(f"GLIGEN {self.source}: {len(self.block_weights)} gated blocks for a UNet with "
                             f"{len(blocks)} transformer blocks (GLIGEN files are made for SD1.x UNets)")
        key = (tuple(b.attn1.heads for b in blocks), parameter.device, parameter.dtype)
        if key not in self.built:
            self.built[key] = [self._gated_block(weights, block.attn1.heads).to(parameter.device, parameter.dtype)
                               for weights, block in zip(self.block_weights, blocks)]
        return self.built[key]

    def _gated_block(self, weights: dict[str, torch.Tensor], heads: int) -> GatedSelfAttentionDense:
        query_dim, context_dim = weights["linear.weight"].shape
        gated = GatedSelfAttentionDense(query_dim, context_dim, heads, query_dim // heads)
        missing = gated.load_state_dict(weights, strict=False).missing_keys
        if missing:
            raise CheckpointFileError(f"GLIGEN {self.source}: a gated block lacks {', '.join(missing)}")
        return gated.eval().requires_grad_(False)


def read_gligen(path: Path) -> GligenModel:
    """The GLIGEN model in an original-layout file (ComfyUI's load_gligen)."""
    state = load_state_dict(path)
    blocks = []
    for section in SECTIONS:
        for index in range(20):
            prefix = f"{section}.{index}."
            weights = {key.split(".fuser.")[-1]: value for key, value in state.items()
                       if prefix in key and ".fuser." in key}
            if weights:
                if "linear.weight" not in weights:
                    raise CheckpointFileError(f"{path.name}: GLIGEN block {prefix} has no linear.weight")
                blocks.append({k: v.float() for k, v in weights.items()})
    position = {key.split("position_net.", 1)[1]: value.float() for key, value in state.items()
                if "position_net." in key}
    if not blocks or "null_positive_feature" not in position:
        raise CheckpointFileError(f"{path.name}: not a GLIGEN file (no fuser blocks or position_net.* tensors)")
    key_dim = int(position["null_positive_feature"].shape[0])
    net = GLIGENTextBoundingboxProjection(positive_len=key_dim, out_dim=int(position["linears.4.weight"].shape[0]))
    missing = net.load_state_dict(position, strict=False).missing_keys
    if missing:
        raise CheckpointFileError(f"{path.name}: the GLIGEN position net lacks {', '.join(missing)}")
    return GligenModel(net.eval().requires_grad_(False), tuple(blocks), key_dim, path.name)


@dataclass(frozen=True, eq=False)
class TextBox:
    """One GLIGENTextBoxApply box: its prompt's pooled embedding [1, key_dim] and its place in latent
    pixels (height, width, y, x), as ComfyUI stores it (pixels // 8)."""

    pooled: torch.Tensor
    height: int
    width: int
    y: int
    x: int


@dataclass(frozen=True, eq=False)
class Grounding:
    """The boxes a conditioning is grounded on, and the GLIGEN model that reads them (the last applied)."""

    model: GligenModel
    boxes: tuple[TextBox, ...]

    def objects(self, batch: int, latent_height: int, latent_width: int) -> torch.Tensor:
        """The grounding tokens [batch, 30, dim]: boxes as corner fractions of the latent, padded with
        masked-out empty ones (ComfyUI's set_position)."""
        if len(self.boxes) > MAX_OBJECTS:
            raise ValueError(f"GLIGEN takes at most {MAX_OBJECTS} text boxes per conditioning, got {len(self.boxes)}")
        corners = torch.zeros(MAX_OBJECTS, 4)
        embeddings = torch.zeros(MAX_OBJECTS, self.model.key_dim)
        masks = torch.zeros(MAX_OBJECTS)
        for i, box in enumerate(self.boxes):
            corners[i] = torch.tensor([box.x / latent_width, box.y / latent_height,
                                       (box.x + box.width) / latent_width, (box.y + box.height) / latent_height])
            embeddings[i] = box.pooled.reshape(-1).float()
            masks[i] = 1.0
        with torch.no_grad():
            objs = self.model.position_net(corners[None], masks[None], positive_embeddings=embeddings[None])
        return objs.expand(batch, -1, -1)

    @contextmanager
    def attached(self, unet: Any, rows: slice, latent_shape: tuple[int, ...]) -> Iterator[None]:
        """Hooks running the gated blocks on `rows` of the batch, for the duration of one UNet call."""
        blocks = transformer_blocks_in_order(unet)
        parameter = next(unet.parameters())
        gated_blocks = self.model.gated_blocks(blocks, parameter)
        objs = self.objects(rows.stop - rows.start, latent_shape[-2], latent_shape[-1]).to(
            parameter.device, parameter.dtype)
        handles = []
        for block, gated in zip(blocks, gated_blocks):
            handles.extend(_fuse_after_self_attention(block, gated, objs, rows))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def _fuse_after_self_attention(block: BasicTransformerBlock, gated: GatedSelfAttentionDense, objs: torch.Tensor,
                               rows: slice) -> list:
    """A block pre-hook keeping its input (the residual) and a self-attention hook returning
    gated(out + residual) - residual on `rows`."""
    residual: dict[str, torch.Tensor] = {}

    def keep_input(_module, args, kwargs):
        residual["hidden"] = hidden_states_of(args, kwargs)

    def fuse(_module, _args, output):
        hidden = residual.pop("hidden")
        changed = output.clone()
        changed[rows] = gated(output[rows] + hidden[rows], objs) - hidden[rows]
        return changed

    return [block.register_forward_pre_hook(keep_input, with_kwargs=True), block.attn1.register_forward_hook(fuse)]
