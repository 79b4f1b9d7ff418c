"""CLIP vision nodes: load an image encoder (models/clip_vision) and encode images with it.

The CLIP_VISION_OUTPUT they produce feeds unCLIP conditioning, style models and IP-Adapters.
"""

from __future__ import annotations

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import ModelFiles
from engine.types import IMAGE, Choice, Link
from nodes.models.clip_vision_loading import ClipVisionModel, load_clip_vision
from nodes.models.runtime import runtime_from_settings

CLIP_VISION = "CLIP_VISION"
CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"


@node("CLIPVisionLoader", display_name="Load CLIP Vision", category="loaders",
      outputs=[Out(CLIP_VISION, "CLIP_VISION")], uses_settings=["precision", "device"])
class CLIPVisionLoader:
    """Loads a CLIP vision encoder (transformers or OpenCLIP key layout)."""

    clip_name = Choice(ModelFiles("clip_vision"))

    def run(self, ctx: RunContext, clip_name: str) -> tuple:
        runtime = runtime_from_settings(ctx.settings)
        return (load_clip_vision(ctx.paths.model_path("clip_vision", clip_name), runtime.dtype, runtime.device,
                                 name=clip_name),)


@node("CLIPVisionEncode", display_name="CLIP Vision Encode", category="conditioning",
      outputs=[Out(CLIP_VISION_OUTPUT, "CLIP_VISION_OUTPUT")])
class CLIPVisionEncode:
    """Encodes images: their projected embedding and hidden states. `center` crops to a square first;
    `none` squashes the whole image to the encoder's size."""

    clip_vision = Link(CLIP_VISION)
    image = Link(IMAGE)
    crop = Choice(["center", "none"])

    def run(self, ctx: RunContext, clip_vision: ClipVisionModel, image, crop: str) -> tuple:
        return (clip_vision.encode(image, crop=crop == "center"),)
