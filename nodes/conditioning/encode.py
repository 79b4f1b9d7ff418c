"""Prompts to conditioning tensors with transformers CLIP text encoders, the way ComfyUI computes them.

The arithmetic, per text encoder:
- All chunks of a prompt are encoded in one batch. When any token has a weight other than 1.0,
  the empty prompt (start, end, padding) is encoded alongside, and each token whose weight w is
  not 1.0 becomes `z_empty + (z - z_empty) * w`, position by position, in float32 (ComfyUI's
  `ClipTokenWeightEncoder`). A prompt without weights is exactly the encoder's own output.
- Which hidden state conditions the model depends on the family (`ClipRecipe`) and on
  CLIPSetLastLayer (`layer_idx`: -1 the last layer, -2 the penultimate, ...). Whether the final
  layer norm is applied to an earlier layer's output depends on the family too: SD1.x and SD2.x
  apply it, SDXL's two encoders do not (so on SDXL, CLIPSetLastLayer -1 gives the last layer
  *without* its norm, as in ComfyUI). An index beyond the encoder's depth means "last layer".
- The pooled output is the final layer's normed output at the first chunk's end token, through
  the text projection when the encoder has one (SDXL's CLIP-G), whatever layer was selected.
- The chunks are concatenated along the token axis: [1, 77 × chunks, width].
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from nodes.conditioning.embeddings import EmbeddingLibrary
from nodes.conditioning.tokens import CHUNK_LENGTH, TokenizedPrompt, tokenize_prompt
from nodes.models.clip_tokenizer import OPEN_CLIP_PAD_TOKEN, load_clip_tokenizer

log = logging.getLogger(__name__)

EmbeddingDirs = str | Path | Iterable[str | Path] | None


@dataclass(frozen=True)
class ClipRecipe:
    """How a model family reads one of its CLIP text encoders (ComfyUI's per-model settings).

    `default_layer`: the hidden state used without CLIPSetLastLayer (None: the last layer's
    normed output). `norm_hidden`: whether the final layer norm is applied to an earlier layer's
    output. `embedding_key`: which vectors an SDXL-style embedding file gives this encoder.
    `absent_final_layers`: final layers the loaded module lacks but ComfyUI counts (SD2.x
    checkpoints are loaded without the unused last block of OpenCLIP ViT-H).
    """

    name: str
    default_layer: int | None
    norm_hidden: bool
    embedding_key: str = "clip_l"
    absent_final_layers: int = 0


SD1_CLIP_L = ClipRecipe("SD1.x CLIP-L", default_layer=None, norm_hidden=True)
# ComfyUI looks SD2 embeddings up under the "clip_l" key too (its SD2 tokenizer keeps the default).
SD2_CLIP_H = ClipRecipe("SD2.x OpenCLIP-H", default_layer=-2, norm_hidden=True, absent_final_layers=1)
SDXL_CLIP_L = ClipRecipe("SDXL CLIP-L", default_layer=-2, norm_hidden=False)
SDXL_CLIP_G = ClipRecipe("SDXL OpenCLIP-bigG", default_layer=-2, norm_hidden=False, embedding_key="clip_g")

RECIPES_BY_CONFIG = {"sd15": (SD1_CLIP_L,), "sd2": (SD2_CLIP_H,), "sdxl": (SDXL_CLIP_L, SDXL_CLIP_G),
                     "sdxl_refiner": (SDXL_CLIP_G,)}


def _text_transformer(encoder: Any) -> Any:
    """The module holding `final_layer_norm` (CLIPTextModelWithProjection wraps a CLIPTextModel)."""
    return getattr(encoder, "text_model", encoder)


def _hidden_size(encoder: Any) -> int:
    return int(encoder.config.hidden_size)


def _library(embeddings_dir: EmbeddingDirs, encoder: Any, recipe: ClipRecipe) -> EmbeddingLibrary | None:
    if embeddings_dir is None:
        return None
    return EmbeddingLibrary(embeddings_dir, key=recipe.embedding_key, width=_hidden_size(encoder))


Placed = dict[tuple[int, int], torch.Tensor]  # embedding vectors by (chunk, position)


def _chunk_inputs(tokenized: TokenizedPrompt, width: int) -> tuple[list[list[int]], Placed, int]:
    """Token ids per chunk, the vectors replacing token embeddings at (chunk, position), and the
    position of the first chunk's end token.

    A vector of the wrong width (an SD1 embedding used with SDXL's CLIP-G, say) is left out and
    the chunk is topped up with padding at its end, as ComfyUI does; the weights stay where they
    were, also as in ComfyUI.
    """
    rows: list[list[int]] = []
    vectors: Placed = {}
    first_end = 0
    for row, chunk in enumerate(tokenized.chunks):
        ids: list[int] = []
        row_vectors: dict[int, torch.Tensor] = {}
        dropped = 0
        for position, token in enumerate(chunk.ids):
            vector = chunk.vectors.get(position)
            if vector is not None and vector.shape[-1] != width:
                dropped += 1
                continue
            if vector is not None:
                row_vectors[len(ids)] = vector
            ids.append(token)
        if dropped:
            log.warning("%d embedding vector(s) of another width do not fit this %d-wide text encoder; "
                        "they are left out", dropped, width)
            ids.extend([tokenized.pad_id] * dropped)
        if row == 0:
            first_end = next(i for i, t in enumerate(ids) if t == tokenized.end_id and i not in row_vectors)
        rows.append(ids)
        vectors.update({(row, position): v for position, v in row_vectors.items()})
    return rows, vectors, first_end


@contextmanager
def _token_vectors(encoder: Any, input_ids: torch.Tensor, vectors: Placed) -> Iterator[None]:
    """While encoding `input_ids`, replace the token embeddings at the given (row, position) with
    embedding vectors. transformers' CLIPTextModel takes no `inputs_embeds`, so a forward hook on
    its token embedding does it; the hook only touches a call with exactly these ids."""
    if not vectors:
        yield
        return

    def substitute(module: Any, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        ids = args[0] if args else None
        if ids is None or ids.shape != input_ids.shape or not torch.equal(ids, input_ids):
            return None
        output = output.clone()
        for (row, position), vector in vectors.items():
            output[row, position] = vector.to(device=output.device, dtype=output.dtype)
        return output

    handle = encoder.get_input_embeddings().register_forward_hook(substitute)
    try:
        yield
    finally:
        handle.remove()


def _selected_hidden(outputs: Any, encoder: Any, recipe: ClipRecipe, layer_idx: int | None) -> torch.Tensor:
    """The hidden state ComfyUI would use for `layer_idx` (None: the recipe's default)."""
    layers = int(encoder.config.num_hidden_layers)
    depth = layers + recipe.absent_final_layers  # the depth ComfyUI counts from
    layer = recipe.default_layer if layer_idx is None else int(layer_idx)
    if layer is None or not -depth <= layer < depth:
        index = depth  # "last": the final layer's normed output
    else:
        index = layer + depth if layer < 0 else layer
    if index >= layers:
        if recipe.absent_final_layers and (layer_idx is not None):
            log.warning("%s: layer %s is not in the loaded text encoder (its final %d layer(s) were "
                        "not loaded); using its last layer", recipe.name, layer_idx, recipe.absent_final_layers)
        if index == depth or recipe.norm_hidden:
            return outputs.last_hidden_state
        return outputs.hidden_states[layers]
    hidden = outputs.hidden_states[index + 1]  # hidden_states[0] is the embedding output
    return _text_transformer(encoder).final_layer_norm(hidden) if recipe.norm_hidden else hidden


def _device(encoder: Any) -> torch.device:
    return next(encoder.parameters()).device


def encode_tokens(tokenized: TokenizedPrompt, text_encoder: Any, *, layer_idx: int | None = None,
                  recipe: ClipRecipe = SD1_CLIP_L) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode an already tokenized prompt: (cond [1, 77·chunks, width], pooled [1, width']), float32."""
    width = _hidden_size(text_encoder)
    rows, vectors, first_end = _chunk_inputs(tokenized, width)
    weighted = any(chunk.has_weights for chunk in tokenized.chunks)
    if weighted:  # the empty prompt, the reference the weights scale from
        length = max(len(r) for r in rows)
        rows.append([tokenized.start_id, tokenized.end_id] + [tokenized.pad_id] * (length - 2))
    device = _device(text_encoder)
    input_ids = torch.tensor(rows, dtype=torch.long, device=device)
    with torch.no_grad(), _token_vectors(text_encoder, input_ids, vectors):
        outputs = text_encoder(input_ids=input_ids, output_hidden_states=True)
        z = _selected_hidden(outputs, text_encoder, recipe, layer_idx).float()
        pooled = outputs.last_hidden_state[0:1, first_end]
        projection = getattr(text_encoder, "text_projection", None)
        if projection is not None:
            pooled = projection(pooled)
    pooled = pooled.float()
    if weighted:
        z, z_empty = z[:-1], z[-1]
        weights = torch.tensor([chunk.weights for chunk in tokenized.chunks], dtype=z.dtype, device=z.device)
        weights = weights[:, :z.shape[1], None]
        z = torch.where(weights != 1.0, (z - z_empty) * weights + z_empty, z)
    return z.reshape(1, -1, z.shape[-1]), pooled


def encode_prompt(text: str, text_encoder: Any, tokenizer: Any, *, layer_idx: int | None = None,
                  embeddings_dir: EmbeddingDirs = None, recipe: ClipRecipe = SD1_CLIP_L
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode `text` (with ComfyUI's weighting syntax) with one CLIP text encoder.

    Returns (cond [1, 77·chunks, width], pooled [1, width']) in float32. `layer_idx` is
    CLIPSetLastLayer's value (-1 last, -2 penultimate, ...; None: the family default);
    `embeddings_dir` is the folder (or folders) of `embedding:NAME` files, None to read such
    references as text; `recipe` says which family's encoder this is.
    """
    library = _library(embeddings_dir, text_encoder, recipe)
    tokenized = tokenize_prompt(text, tokenizer, embeddings=library, length=CHUNK_LENGTH)
    return encode_tokens(tokenized, text_encoder, layer_idx=layer_idx, recipe=recipe)


def encode_sdxl(text: str, clip_l: Any, clip_g: Any, *, tokenizer_l: Any = None, tokenizer_g: Any = None,
                layer_idx: int | None = None, embeddings_dir: EmbeddingDirs = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL conditioning: CLIP-L's and CLIP-G's hidden states side by side per token (768 + 1280 =
    2048 wide on the real models), and CLIP-G's projected pooled output [1, 1280].

    Tokenizers default to the shipped one, padding with the end token for CLIP-L and with `!`
    (id 0) for CLIP-G. Should the two encoders end up with different chunk counts (an embedding
    that only one of them can read), the longer is cut to the shorter, as in ComfyUI.
    """
    tokenizer_l = tokenizer_l if tokenizer_l is not None else load_clip_tokenizer()
    tokenizer_g = tokenizer_g if tokenizer_g is not None else load_clip_tokenizer(OPEN_CLIP_PAD_TOKEN)
    cond_g, pooled_g = encode_prompt(text, clip_g, tokenizer_g, layer_idx=layer_idx,
                                     embeddings_dir=embeddings_dir, recipe=SDXL_CLIP_G)
    cond_l, _ = encode_prompt(text, clip_l, tokenizer_l, layer_idx=layer_idx,
                              embeddings_dir=embeddings_dir, recipe=SDXL_CLIP_L)
    length = min(cond_l.shape[1], cond_g.shape[1])
    return torch.cat([cond_l[:, :length], cond_g[:, :length]], dim=-1), pooled_g


def encode_with_checkpoint(text: str, checkpoint: Any, *, layer_idx: int | None = None,
                           embeddings_dir: EmbeddingDirs = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode `text` with a loaded checkpoint's text encoders (a `LoadedCheckpoint`), choosing
    the recipe by its family: what CLIPTextEncode computes."""
    config_dir = checkpoint.family.config_dir
    if config_dir not in RECIPES_BY_CONFIG:
        raise ValueError(f"no text-encoding recipe for the {checkpoint.family.name} family")
    encoders, tokenizers = checkpoint.text_encoders, checkpoint.tokenizers
    if config_dir == "sdxl":
        return encode_sdxl(text, encoders[0], encoders[1], tokenizer_l=tokenizers[0], tokenizer_g=tokenizers[1],
                           layer_idx=layer_idx, embeddings_dir=embeddings_dir)
    return encode_prompt(text, encoders[0], tokenizers[0], layer_idx=layer_idx, embeddings_dir=embeddings_dir,
                         recipe=RECIPES_BY_CONFIG[config_dir][0])


__all__ = ["ClipRecipe", "RECIPES_BY_CONFIG", "SD1_CLIP_L", "SD2_CLIP_H", "SDXL_CLIP_G", "SDXL_CLIP_L",
           "encode_prompt", "encode_sdxl", "encode_tokens", "encode_with_checkpoint"]
