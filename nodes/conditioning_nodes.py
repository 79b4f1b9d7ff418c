"""Conditioning nodes: encode prompts, combine them, restrict them to areas, zero them out."""

from __future__ import annotations

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import MODEL_KINDS, Paths
from engine.types import CLIP, CONDITIONING, Float, Int, Link, String
from nodes.conditioning.encode import encode_with_checkpoint
from nodes.conditioning.value import CondEntry
from nodes.models.handles import ClipHandle
from nodes.models.patching import clip_patches_applied

MAX_RESOLUTION = 16384


@node("CLIPTextEncode", display_name="CLIP Text Encode (Prompt)", category="conditioning",
      outputs=[Out(CONDITIONING, "CONDITIONING")])
class CLIPTextEncode:
    """Encodes a prompt, with (word:1.2) weighting and embedding:name textual inversions."""

    text = String("", multiline=True, dynamic_prompts=True, tooltip="The prompt to encode.")
    clip = Link(CLIP)

    def fingerprint(self, paths: Paths, text: str = "") -> str:
        """Embedding files the prompt may read: re-encode when one is added or changed."""
        if "embedding:" not in text:
            return ""
        stamps = []
        extensions = MODEL_KINDS["embeddings"].extensions
        for folder in paths.model_dirs("embeddings"):
            if folder.is_dir():
                stamps += [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                           for p in sorted(folder.rglob("*")) if p.suffix.lower() in extensions]
        return "|".join(stamps)

    def run(self, ctx: RunContext, text: str, clip: ClipHandle) -> tuple:
        with clip_patches_applied(clip), torch.inference_mode():
            cond, pooled = encode_with_checkpoint(text, clip, layer_idx=clip.layer_idx,
                                                  embeddings_dir=ctx.paths.model_dirs("embeddings"))
        return ((CondEntry(cond.cpu(), pooled.cpu() if pooled is not None else None),),)


@node("ConditioningCombine", display_name="Conditioning (Combine)", category="conditioning",
      outputs=[Out(CONDITIONING, "CONDITIONING")])
class ConditioningCombine:
    """Uses both conditionings: their predictions are averaged (per area) while sampling."""

    conditioning_1 = Link(CONDITIONING)
    conditioning_2 = Link(CONDITIONING)

    def run(self, ctx: RunContext, conditioning_1: tuple, conditioning_2: tuple) -> tuple:
        return (tuple(conditioning_1) + tuple(conditioning_2),)


@node("ConditioningSetArea", display_name="Conditioning (Set Area)", category="conditioning",
      outputs=[Out(CONDITIONING, "CONDITIONING")])
class ConditioningSetArea:
    """Restricts a conditioning to a rectangle of the image (in pixels), with a strength."""

    conditioning = Link(CONDITIONING)
    width = Int(64, min=64, max=MAX_RESOLUTION, step=8)
    height = Int(64, min=64, max=MAX_RESOLUTION, step=8)
    x = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    y = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    strength = Float(1.0, min=0.0, max=10.0, step=0.01)

    def run(self, ctx: RunContext, conditioning: tuple, width: int, height: int, x: int, y: int,
            strength: float) -> tuple:
        area = (height // 8, width // 8, y // 8, x // 8)
        return (tuple(entry.with_(area=area, area_fraction=None, strength=strength, set_area_to_bounds=False)
                      for entry in conditioning),)


@node("ConditioningZeroOut", display_name="ConditioningZeroOut", category="advanced/conditioning",
      outputs=[Out(CONDITIONING, "CONDITIONING")])
class ConditioningZeroOut:
    """Replaces the prompt embeddings (and pooled output) with zeros."""

    conditioning = Link(CONDITIONING)

    def run(self, ctx: RunContext, conditioning: tuple) -> tuple:
        return (tuple(entry.with_(embeds=torch.zeros_like(entry.embeds),
                                  pooled=None if entry.pooled is None else torch.zeros_like(entry.pooled))
                      for entry in conditioning),)
