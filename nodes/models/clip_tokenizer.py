"""The CLIP BPE tokenizer, loaded from files shipped in `nodes/models/tokenizer/`.

Every Stable Diffusion text encoder (OpenAI CLIP-L, OpenCLIP ViT-H and bigG) uses the same
49,408-token BPE vocabulary; they differ only in the padding token. The vocabulary was derived
from OpenAI's `bpe_simple_vocab_16e6.txt.gz` exactly as the reference tokenizer derives it:
256 byte symbols, the same with `</w>`, one token per merge (the first 48,894 merges), then
`<|startoftext|>` and `<|endoftext|>`.
"""

from __future__ import annotations

from pathlib import Path

TOKENIZER_DIR = Path(__file__).resolve().parent / "tokenizer"
VOCAB_SIZE = 49408
END_TOKEN = "<|endoftext|>"
# OpenCLIP (SD2.x, SDXL's second encoder) pads with "!" (id 0); OpenAI CLIP pads with the end token.
OPEN_CLIP_PAD_TOKEN = "!"


def load_clip_tokenizer(pad_token: str = END_TOKEN, folder: str | None = None):
    """A `transformers.CLIPTokenizer` (the fast, Rust-backed one) built from local files only.

    Not cached: building one takes under 0.1 s, and a fresh object per checkpoint means no caller
    (adding tokens for an embedding, say) can change another's. `folder` overrides the shipped
    files, e.g. with a diffusers folder's own `tokenizer/`.
    """
    from transformers import CLIPTokenizerFast  # type: ignore[attr-defined]  # a lazy attribute

    return CLIPTokenizerFast.from_pretrained(folder or str(TOKENIZER_DIR), pad_token=pad_token,
                                             local_files_only=True)
