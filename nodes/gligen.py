"""GLIGEN nodes: a GLIGEN model from models/gligen, and text boxes that place a prompt in a region.

GLIGENTextBoxApply adds a box (its text's pooled CLIP embedding and its place, in latent pixels as
ComfyUI keeps it) to every entry of a conditioning; boxes from earlier nodes are kept, and the
latest node's GLIGEN model reads them all. While sampling, the boxes steer the UNet through the
model's gated self-attention (nodes.models.gligen_loading), on that conditioning's side only.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import ModelFiles
from engine.types import CLIP, CONDITIONING, Choice, Int, Link, String
from nodes.conditioning.encode import encode_with_checkpoint
from nodes.conditioning.value import Conditioning
from nodes.conditioning_nodes import MAX_RESOLUTION
from nodes.models.gligen_loading import GligenModel, Grounding, TextBox, read_gligen
from nodes.models.handles import ClipHandle
from nodes.models.patching import clip_patches_applied

GLIGEN = "GLIGEN"
NO_DEFAULT: Any = None  # ComfyUI declares the box's text without a default


@node("GLIGENLoader", category="loaders", outputs=[Out(GLIGEN, "GLIGEN")])
class GLIGENLoader:
    """Loads a GLIGEN model (gated self-attention for text boxes, SD1.x) from models/gligen."""

    gligen_name = Choice(ModelFiles("gligen"))

    def run(self, ctx: RunContext, gligen_name: str) -> tuple:
        return (read_gligen(ctx.paths.model_path("gligen", gligen_name)),)


@node("GLIGENTextBoxApply", category="conditioning/gligen", outputs=[Out(CONDITIONING, "CONDITIONING")])
class GLIGENTextBoxApply:
    """Places `text` in the box of width×height pixels at (x, y): the sampler draws it there."""

    conditioning_to = Link(CONDITIONING)
    clip = Link(CLIP)
    gligen_textbox_model = Link(GLIGEN)
    text = String(NO_DEFAULT, multiline=True, dynamic_prompts=True)
    width = Int(64, min=8, max=MAX_RESOLUTION, step=8)
    height = Int(64, min=8, max=MAX_RESOLUTION, step=8)
    x = Int(0, min=0, max=MAX_RESOLUTION, step=8)
    y = Int(0, min=0, max=MAX_RESOLUTION, step=8)

    def run(self, ctx: RunContext, conditioning_to: Conditioning, clip: ClipHandle,
            gligen_textbox_model: GligenModel, text: str, width: int, height: int, x: int, y: int) -> tuple:
        with clip_patches_applied(clip), torch.inference_mode():
            _, pooled = encode_with_checkpoint(text, clip, layer_idx=clip.layer_idx,
                                               embeddings_dir=ctx.paths.model_dirs("embeddings"))
        if pooled.shape[-1] != gligen_textbox_model.key_dim:
            raise ValueError(f"GLIGEN {gligen_textbox_model.source} reads {gligen_textbox_model.key_dim}-wide "
                             f"text embeddings; this CLIP gives {pooled.shape[-1]} (GLIGEN is for SD1.x)")
        box = TextBox(pooled.cpu(), height // 8, width // 8, y // 8, x // 8)
        grounded = []
        for entry in conditioning_to:
            previous = entry.gligen.boxes if entry.gligen is not None else ()
            grounded.append(entry.with_(gligen=Grounding(gligen_textbox_model, previous + (box,))))
        return (tuple(grounded),)
