"""Prompt weighting syntax, read the way ComfyUI's CLIPTextEncode reads it.

What users write, and what it means here (as in ComfyUI):

- `(word)` multiplies the weight by 1.1; nesting multiplies again: `((word))` is 1.1 × 1.1.
- `(word:1.3)` sets the weight to 1.3. The number *replaces* the weight of the group rather than
  multiplying the enclosing one, so `((word:1.3))` is 1.3 (A1111 would give 1.43), while
  `((word):1.3)` gives the inner group 1.3 × 1.1.
- `\\(` and `\\)` are literal parentheses. No other escapes exist: a backslash before anything
  else stays in the text.
- Square brackets are plain text. ComfyUI has no `[word]` de-emphasis (that is A1111's syntax);
  write `(word:0.9)` instead. Likewise A1111's `BREAK` and `AND` are ordinary words.
- Unbalanced parentheses never fail. An unclosed `(` is kept as text; a stray `)` turns the rest
  of the prompt into plain text until an opening parenthesis balances it (ComfyUI's quirk).
- A group whose text after its last `:` is not a number keeps the 1.1 and keeps the `:` text.
- `embedding:NAME` refers to a textual-inversion file. It is recognised at the start of a
  weighted piece or after whitespace; NAME runs to the next whitespace and stops before a `<`
  or `[`. The rest of that piece is tokenized together with it (see `EmbeddingRef.trailing`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EMBEDDING_PREFIX = "embedding:"
EMPHASIS = 1.1

# Escaped parentheses travel through the parser as control characters nobody types.
_ESCAPED_CLOSE, _ESCAPED_OPEN = "\0\1", "\0\2"
_EMBEDDING_SPLIT = re.compile(r"(?<=\s)" + re.escape(EMBEDDING_PREFIX))
_NAME_STOP = re.compile(r"[<\[]")


@dataclass(frozen=True)
class TextSegment:
    """Text to tokenize, every token of it carrying `weight`."""

    text: str
    weight: float


@dataclass(frozen=True)
class EmbeddingRef:
    """`embedding:NAME` in a prompt.

    `name` is the file name as written (extension optional, trailing commas included: the
    tokenizer retries without them when no file has that name). `trailing` is the text that
    followed the name in the same piece; it is tokenized as one group after the vectors. `source`
    is the reference as written, tokenized as plain text when embeddings are not in use.
    """

    name: str
    weight: float
    trailing: str = ""
    source: str = ""


PromptPart = TextSegment | EmbeddingRef


def _escape(text: str) -> str:
    return text.replace("\\)", _ESCAPED_CLOSE).replace("\\(", _ESCAPED_OPEN)


def _unescape(text: str) -> str:
    return text.replace(_ESCAPED_CLOSE, ")").replace(_ESCAPED_OPEN, "(")


def _top_level_pieces(text: str) -> list[str]:
    """Split into top-level `(...)` groups and the text between them.

    Depth is counted without ever clamping at zero, which is what makes a stray `)` swallow
    the parentheses after it: they only open a new group once the count is back to zero.
    """
    pieces: list[str] = []
    start = 0
    depth = 0
    for i, char in enumerate(text):
        if char == "(":
            if depth == 0 and i > start:
                pieces.append(text[start:i])
                start = i
            elif depth == 0:
                start = i
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                pieces.append(text[start:i + 1])
                start = i + 1
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _group_weight(inner: str, weight: float) -> tuple[str, float]:
    """The text and weight inside one `(...)` group entered with `weight`."""
    weight *= EMPHASIS
    colon = inner.rfind(":")
    if colon > 0:
        try:
            return inner[:colon], float(inner[colon + 1:])
        except ValueError:
            pass
    return inner, weight


def parse_weights(text: str) -> list[tuple[str, float]]:
    """`(text, weight)` pieces in prompt order, escapes resolved; every piece is non-empty.

    Pieces are kept as ComfyUI forms them (not merged, whitespace kept), because each piece is
    tokenized on its own and that decides where long prompts are split into chunks.
    """
    out: list[tuple[str, float]] = []
    # An explicit stack instead of recursion: deeply nested parentheses must not overflow it.
    # Entries: (text, weight, needs_parsing); pushed in reverse so they pop in prompt order.
    stack: list[tuple[str, float, bool]] = [(_escape(text), 1.0, True)]
    while stack:
        piece, weight, needs_parsing = stack.pop()
        if not needs_parsing:
            out.append((_unescape(piece), weight))
            continue
        expanded = []
        for part in _top_level_pieces(piece):
            if len(part) >= 2 and part[0] == "(" and part[-1] == ")":
                expanded.append((*_group_weight(part[1:-1], weight), True))
            else:
                expanded.append((part, weight, False))
        stack.extend(reversed(expanded))
    return [(t, w) for t, w in out if t]


def _embedding_ref(piece: str, weight: float) -> PromptPart:
    words = piece[len(EMBEDDING_PREFIX):].strip("\n").split()
    if not words:  # a bare "embedding:" (ComfyUI fails on it); keep it as the text it is
        return TextSegment(piece, weight)
    name, trailing = words[0], " ".join(words[1:])
    stop = _NAME_STOP.search(name)
    if stop is not None:
        trailing = name[stop.start():] + (" " + trailing if trailing else "")
        name = name[:stop.start()]
    return EmbeddingRef(name=name, weight=weight, trailing=trailing, source=piece)


def split_embeddings(text: str, weight: float) -> list[PromptPart]:
    """One weighted piece as text and embedding references, in order."""
    pieces = _EMBEDDING_SPLIT.split(text)
    pieces = pieces[:1] + [EMBEDDING_PREFIX + p for p in pieces[1:]]
    parts: list[PromptPart] = []
    for piece in pieces:
        if not piece:
            continue
        if piece.startswith(EMBEDDING_PREFIX):
            parts.append(_embedding_ref(piece, weight))
        else:
            parts.append(TextSegment(piece, weight))
    return parts


def parse_prompt(text: str) -> list[PromptPart]:
    """A prompt as weighted text segments and embedding references, in order. Never raises."""
    return [part for piece, weight in parse_weights(text) for part in split_embeddings(piece, weight)]


__all__ = ["EMBEDDING_PREFIX", "EmbeddingRef", "PromptPart", "TextSegment", "parse_prompt",
           "parse_weights", "split_embeddings"]
