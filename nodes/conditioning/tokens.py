"""Weighted prompts as CLIP token chunks: 77 positions each (start, 75 tokens, end, padding).

Chunking follows ComfyUI, which decides where a long prompt is split, and so what the model sees:
- Each weighted piece of the prompt (and each embedding, and the text trailing one) is tokenized
  on its own into a *group*. Groups fill a chunk in order.
- A group that does not fit in what is left of a chunk: if it has 8 tokens or more it is cut, the
  chunk filled to its 75th token; a shorter group moves whole to the next chunk, and the current
  chunk is closed with its end token and padding. So a prompt with one weight is cut at exactly
  75 tokens (even mid-word), while short emphasised pieces are never split.
- Padding: the end token for OpenAI CLIP (SD1.x, SDXL's CLIP-L), token 0 (`!`) for OpenCLIP
  (SD2.x, SDXL's CLIP-G); this comes from the tokenizer's `pad_token_id`, which the checkpoint
  loader sets per encoder. Start, end and pad positions weigh 1.0.
- An embedding's vectors take one position each, carrying the weight of the piece they are in.
  A missing embedding is reported and dropped, and the text after it is still read (ComfyUI
  logs "embedding:NAME does not exist, ignoring"). With no embeddings folder at all, the
  reference is read as plain text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Union

import torch

from nodes.conditioning.embeddings import EmbeddingLibrary
from nodes.conditioning.prompt_syntax import EmbeddingRef, TextSegment, parse_prompt

CHUNK_LENGTH = 77
# A group at least this long may be cut across chunks; shorter ones move whole (ComfyUI's value).
SPLITTABLE_GROUP = 8

log = logging.getLogger(__name__)

Item = Union[int, torch.Tensor]  # a token id, or one embedding vector


@dataclass
class TokenChunk:
    """One encoder input of `len(ids)` positions. Where `vectors` has an entry, that vector
    replaces the token embedding (the id there is only a placeholder, the pad token)."""

    ids: list[int]
    weights: list[float]
    vectors: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def has_weights(self) -> bool:
        return any(w != 1.0 for w in self.weights)


@dataclass
class TokenizedPrompt:
    """A prompt ready for one text encoder, with the special tokens it was built with."""

    chunks: list[TokenChunk]
    start_id: int
    end_id: int
    pad_id: int
    missing_embeddings: list[str] = field(default_factory=list)


def special_tokens(tokenizer: Any) -> tuple[int, int, int]:
    """(start, end, pad) ids of a CLIP tokenizer; the pad id falls back to the end token."""
    empty = tokenizer("")["input_ids"]
    start, end = int(empty[0]), int(empty[-1])
    pad = tokenizer.pad_token_id
    return start, end, end if pad is None else int(pad)


def _token_ids(tokenizer: Any, text: str) -> list[int]:
    # verbose=False: the tokenizer's "longer than 77" warning means nothing here, chunking follows.
    return [int(t) for t in tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]]


def _groups(text: str, tokenizer: Any, library: EmbeddingLibrary | None,
            missing: list[str]) -> list[list[tuple[Item, float]]]:
    """The prompt as token groups, each (item, weight) pair one future position."""
    groups: list[list[tuple[Item, float]]] = []
    for part in parse_prompt(text):
        if isinstance(part, TextSegment):
            groups.append([(t, part.weight) for t in _token_ids(tokenizer, part.text)])
            continue
        assert isinstance(part, EmbeddingRef)
        if library is None:
            groups.append([(t, part.weight) for t in _token_ids(tokenizer, part.source)])
            continue
        name, trailing = part.name, part.trailing
        vectors = library.vectors(name)
        if vectors is None and name.rstrip(",") != name:
            # "embedding:name," – retry without the comma, which then is read as text (ComfyUI).
            commas = name[len(name.rstrip(",")):]
            name = name.strip(",")
            vectors = library.vectors(name)
            trailing = f"{commas} {trailing}"
        if vectors is None:
            log.warning("embedding:%s does not exist in %s, ignoring it", name,
                        ", ".join(str(r) for r in library.roots) or "no folder")
            missing.append(name)
        else:
            groups.append([(v, part.weight) for v in vectors])
        if trailing:
            groups.append([(t, part.weight) for t in _token_ids(tokenizer, trailing)])
    return groups


def _chunk(groups: list[list[tuple[Item, float]]], start: int, end: int, pad: int,
           length: int) -> list[list[tuple[Item, float]]]:
    """ComfyUI's packing of token groups into chunks of `length` positions."""
    chunks: list[list[tuple[Item, float]]] = []
    current: list[tuple[Item, float]] = [(start, 1.0)]
    for group in groups:
        splittable = len(group) >= SPLITTABLE_GROUP
        while group:
            room = length - 1 - len(current)  # one position stays for the end token
            if len(group) <= room:
                current.extend(group)
                break
            if splittable:
                current.extend(group[:room])
                group = group[room:]
                current.append((end, 1.0))
            else:
                current.append((end, 1.0))
                current.extend([(pad, 1.0)] * room)
            chunks.append(current)
            current = [(start, 1.0)]
    current.append((end, 1.0))
    current.extend([(pad, 1.0)] * (length - len(current)))
    chunks.append(current)
    return chunks


def _as_chunk(items: list[tuple[Item, float]], pad: int) -> TokenChunk:
    chunk = TokenChunk(ids=[], weights=[])
    for position, (item, weight) in enumerate(items):
        if isinstance(item, int):
            chunk.ids.append(item)
        else:
            chunk.ids.append(pad)
            chunk.vectors[position] = item
        chunk.weights.append(weight)
    return chunk


def tokenize_prompt(text: str, tokenizer: Any, *, embeddings: EmbeddingLibrary | None = None,
                    length: int = CHUNK_LENGTH) -> TokenizedPrompt:
    """Parse `text`'s weighting syntax and tokenize it into chunks of `length` positions.

    `tokenizer` is a transformers CLIP tokenizer (its pad token decides the padding);
    `embeddings` resolves `embedding:NAME` references (None: they are read as text).
    """
    start, end, pad = special_tokens(tokenizer)
    missing: list[str] = []
    groups = _groups(text, tokenizer, embeddings, missing)
    chunks = [_as_chunk(items, pad) for items in _chunk(groups, start, end, pad, length)]
    return TokenizedPrompt(chunks=chunks, start_id=start, end_id=end, pad_id=pad, missing_embeddings=missing)


__all__ = ["CHUNK_LENGTH", "TokenChunk", "TokenizedPrompt", "special_tokens", "tokenize_prompt"]
