"""SDXL's own prompt nodes: a prompt per text encoder with the size conditioning (base), and the
aesthetic score (refiner). Read from ComfyUI's comfy_extras/nodes_clip_sdxl.py: the same inputs in
its order (the refiner lists `clip` last), and the same numbers on the entries.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import Paths
from engine.types import CLIP, CONDITIONING, Float, Int, Link, String
from nodes.conditioning.embeddings import EmbeddingLibrary
from nodes.conditioning.encode import SDXL_CLIP_G, SDXL_CLIP_L, ClipRecipe, encode_tokens, encode_with_checkpoint
from nodes.conditioning.size_ids import SizeConditioning
from nodes.conditioning.tokens import CHUNK_LENGTH, TokenizedPrompt, tokenize_prompt
from nodes.conditioning.value import CondEntry
from nodes.conditioning_nodes import MAX_RESOLUTION, CLIPTextEncode
from nodes.models.handles import ClipHandle
from nodes.models.patching import clip_patches_applied

NO_DEFAULT: Any = None  # ComfyUI declares these prompts without a default


def _tokenized(text: str, tokenizer: Any, encoder: Any, recipe: ClipRecipe, embeddings_dirs: list) -> TokenizedPrompt:
    library = EmbeddingLibrary(embeddings_dirs, key=recipe.embedding_key, width=int(encoder.config.hidden_size))
    return tokenize_prompt(text, tokenizer, embeddings=library, length=CHUNK_LENGTH)


def _padded(tokens: TokenizedPrompt, empty: TokenizedPrompt, chunks: int) -> TokenizedPrompt:
    """`tokens` followed by copies of the empty prompt's chunk up to `chunks` chunks (ComfyUI's way
    of giving both encoders as many chunks)."""
    extra = [replace(empty.chunks[0], ids=list(empty.chunks[0].ids), weights=list(empty.chunks[0].weights))
             for _ in range(chunks - len(tokens.chunks))]
    return replace(tokens, chunks=[*tokens.chunks, *extra])


def encode_sdxl_pair(clip: ClipHandle, text_g: str, text_l: str, embeddings_dirs: list
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL conditioning with one prompt for CLIP-G and another for CLIP-L: (cond [1, 77·chunks,
    width_l + width_g], CLIP-G's pooled output). The shorter prompt is padded with empty-prompt chunks."""
    if clip.family.config_dir != "sdxl" or len(clip.text_encoders) != 2:
        raise ValueError(f"CLIPTextEncodeSDXL needs SDXL base's CLIP (CLIP-L and CLIP-G); "
                         f"{clip.source or 'this CLIP'} is {clip.family.name}")
    (clip_l, clip_g), (tokenizer_l, tokenizer_g) = clip.text_encoders, clip.tokenizers
    tokens_g = _tokenized(text_g, tokenizer_g, clip_g, SDXL_CLIP_G, embeddings_dirs)
    tokens_l = _tokenized(text_l, tokenizer_l, clip_l, SDXL_CLIP_L, embeddings_dirs)
    chunks = max(len(tokens_g.chunks), len(tokens_l.chunks))
    tokens_g = _padded(tokens_g, tokenize_prompt("", tokenizer_g, length=CHUNK_LENGTH), chunks)
    tokens_l = _padded(tokens_l, tokenize_prompt("", tokenizer_l, length=CHUNK_LENGTH), chunks)
    cond_g, pooled = encode_tokens(tokens_g, clip_g, layer_idx=clip.layer_idx, recipe=SDXL_CLIP_G)
    cond_l, _ = encode_tokens(tokens_l, clip_l, layer_idx=clip.layer_idx, recipe=SDXL_CLIP_L)
    length = min(cond_l.shape[1], cond_g.shape[1])  # an embedding only one encoder reads can still differ
    return torch.cat([cond_l[:, :length], cond_g[:, :length]], dim=-1), pooled


def _size(minimum: int = 0, default: int = 1024) -> Int:
    return Int(default, min=minimum, max=MAX_RESOLUTION)


@node("CLIPTextEncodeSDXL", category="advanced/conditioning", outputs=[Out(CONDITIONING, "CONDITIONING")])
class CLIPTextEncodeSDXL:
    """SDXL base prompt: `text_g` for OpenCLIP bigG, `text_l` for CLIP-L, and the size the model is
    told the image has (original size, crop offset, target size)."""

    clip = Link(CLIP)
    width = _size()
    height = _size()
    crop_w = _size(default=0)
    crop_h = _size(default=0)
    target_width = _size()
    target_height = _size()
    text_g = String(NO_DEFAULT, multiline=True, dynamic_prompts=True)
    text_l = String(NO_DEFAULT, multiline=True, dynamic_prompts=True)

    def fingerprint(self, paths: Paths, text_g: str = "", text_l: str = "", **sizes: int) -> str:
        """Embedding files either prompt may read (CLIPTextEncode's rule)."""
        return CLIPTextEncode().fingerprint(paths, f"{text_g}\n{text_l}")

    def run(self, ctx: RunContext, clip: ClipHandle, width: int, height: int, crop_w: int, crop_h: int,
            target_width: int, target_height: int, text_g: str, text_l: str) -> tuple:
        with clip_patches_applied(clip), torch.inference_mode():
            cond, pooled = encode_sdxl_pair(clip, text_g, text_l, ctx.paths.model_dirs("embeddings"))
        size = SizeConditioning(width=width, height=height, crop_w=crop_w, crop_h=crop_h,
                                target_width=target_width, target_height=target_height)
        return ((CondEntry(cond.cpu(), pooled.cpu(), size=size),),)


@node("CLIPTextEncodeSDXLRefiner", category="advanced/conditioning", outputs=[Out(CONDITIONING, "CONDITIONING")])
class CLIPTextEncodeSDXLRefiner:
    """SDXL refiner prompt with the aesthetic score it was trained on (6 for good images; negative
    prompts usually get 2.5) and the original image size."""

    ascore = Float(6.0, min=0.0, max=1000.0, step=0.01)
    width = _size()
    height = _size()
    text = String(NO_DEFAULT, multiline=True, dynamic_prompts=True)
    clip = Link(CLIP)

    def fingerprint(self, paths: Paths, text: str = "", **numbers: float) -> str:
        return CLIPTextEncode().fingerprint(paths, text)

    def run(self, ctx: RunContext, ascore: float, width: int, height: int, text: str, clip: ClipHandle) -> tuple:
        with clip_patches_applied(clip), torch.inference_mode():
            cond, pooled = encode_with_checkpoint(text, clip, layer_idx=clip.layer_idx,
                                                  embeddings_dir=ctx.paths.model_dirs("embeddings"))
        size = SizeConditioning(width=width, height=height, aesthetic_score=ascore)
        return ((CondEntry(cond.cpu(), pooled.cpu() if pooled is not None else None, size=size),),)
