"""Text conditioning: ComfyUI's prompt weighting syntax, CLIP token chunks with textual-inversion
embeddings, and encoding with transformers CLIP text encoders (SD1.x, SD2.x, SDXL).

    parse_prompt(text)                      -> weighted text segments and embedding references
    tokenize_prompt(text, tokenizer, ...)   -> 77-token chunks with a weight per token
    encode_prompt(text, encoder, tokenizer) -> (cond [1, 77k, D], pooled [1, D'])
    encode_sdxl(text, clip_l, clip_g)       -> (cond [1, 77k, 2048], pooled [1, 1280])
"""

from nodes.conditioning.embeddings import EmbeddingLibrary
from nodes.conditioning.encode import (
                                       SD1_CLIP_L,
                                       SD2_CLIP_H,
                                       SDXL_CLIP_G,
                                       SDXL_CLIP_L,
                                       ClipRecipe,
                                       encode_prompt,
                                       encode_sdxl,
                                       encode_tokens,
                                       encode_with_checkpoint,
)
from nodes.conditioning.prompt_syntax import EmbeddingRef, TextSegment, parse_prompt, parse_weights
from nodes.conditioning.tokens import TokenChunk, TokenizedPrompt, tokenize_prompt

__all__ = ["ClipRecipe", "EmbeddingLibrary", "EmbeddingRef", "SD1_CLIP_L", "SD2_CLIP_H", "SDXL_CLIP_G", "SDXL_CLIP_L",
           "TextSegment", "TokenChunk", "TokenizedPrompt", "encode_prompt", "encode_sdxl", "encode_tokens",
           "encode_with_checkpoint", "parse_prompt", "parse_weights", "tokenize_prompt"]
