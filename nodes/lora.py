"""LoRA loader nodes: a model and its text encoders with a LoRA's changes, at chosen strengths.

The loaded modules are never changed: the returned handles carry the LoRA as weight patches
that KSampler and CLIPTextEncode apply while they run (`nodes.models.patching`). Loaders stack:
each adds its patches after those already on the handle. A strength of 0 returns the input
handle itself, so the result is exactly what the graph computes without the LoRA.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.context import RunContext
from engine.declare import Out, Provenance, node
from engine.paths import ModelFiles, Paths
from engine.types import CLIP, MODEL, Choice, Float, Link
from nodes.loaders import file_stamp
from nodes.models.builtin import BUILTIN_LORA, ensure_builtin_lora
from nodes.models.handles import ClipHandle, ModelHandle
from nodes.models.lora_weights import TEXT_ENCODER_PARTS, UNET_PART, MatchedLora, match_lora
from nodes.models.patching import WeightPatch
from nodes.models.state_dict_files import load_state_dict

STRENGTH = dict(min=-100.0, max=100.0, step=0.01)


def lora_path(paths: Paths, name: str) -> Path:
    """The LoRA file for `name` (or its alias); the built-in LoRA is generated on first use."""
    name = paths.resolve_model_name("loras", name)
    try:
        return paths.model_path("loras", name)
    except FileNotFoundError:
        if name != BUILTIN_LORA:
            raise
        return ensure_builtin_lora(paths.model_dirs("loras")[0], name)


def lora_fingerprint(paths: Paths, lora_name: str) -> str:
    if paths.resolve_model_name("loras", lora_name) == BUILTIN_LORA:
        return f"builtin:{BUILTIN_LORA}"  # deterministic: generating it on first use must not change the key
    try:
        return file_stamp(paths.model_path("loras", lora_name))
    except FileNotFoundError:
        return "missing"


def load_lora(paths: Paths, lora_name: str, model: ModelHandle, clip: ClipHandle | None) -> MatchedLora:
    """Read a LoRA file and sort its layers onto this model's UNet (and text encoders)."""
    state = load_state_dict(lora_path(paths, lora_name))
    return match_lora(state, lora_name, model.family, model.unet, clip.text_encoders if clip is not None else None)


def with_model_lora(model: ModelHandle, lora: MatchedLora, strength: float) -> ModelHandle:
    """A new handle whose UNet patches end with this LoRA's at `strength` (0: the same handle)."""
    layers = lora.parts.get(UNET_PART)
    if strength == 0 or not layers:
        return model
    return replace(model, patches=model.patches + (WeightPatch(UNET_PART, strength, layers, lora.source),))


def with_clip_lora(clip: ClipHandle, lora: MatchedLora, strength: float) -> ClipHandle:
    """A new handle whose text-encoder patches end with this LoRA's at `strength` (0: the same handle)."""
    added = tuple(WeightPatch(part, strength, lora.parts[part], lora.source)
                  for part in TEXT_ENCODER_PARTS if lora.parts.get(part))
    if strength == 0 or not added:
        return clip
    return replace(clip, patches=clip.patches + added)


@node("LoraLoader", display_name="Load LoRA", category="loaders", outputs=[Out(MODEL, "MODEL"), Out(CLIP, "CLIP")],
      provenance=Provenance("loras", ("strength_model", "strength_clip")))
class LoraLoader:
    """Applies a LoRA (kohya/A1111 or diffusers layer names) to a model and its text encoder,
    each at its own strength. Chain several to stack them."""

    model = Link(MODEL, tooltip="The diffusion model the LoRA changes.")
    clip = Link(CLIP, tooltip="The text encoder the LoRA changes.")
    lora_name = Choice(ModelFiles("loras", builtin=[BUILTIN_LORA]),
                       tooltip="The LoRA file, from models/loras.")
    strength_model = Float(1.0, **STRENGTH, tooltip="How strongly to change the diffusion model (0: not at all).")
    strength_clip = Float(1.0, **STRENGTH, tooltip="How strongly to change the text encoder (0: not at all).")

    def fingerprint(self, paths: Paths, lora_name: str, **_: Any) -> str:
        return lora_fingerprint(paths, lora_name)

    def run(self, ctx: RunContext, model: ModelHandle, clip: ClipHandle, lora_name: str, strength_model: float,
            strength_clip: float) -> tuple:
        if strength_model == 0 and strength_clip == 0:
            return (model, clip)
        lora = load_lora(ctx.paths, lora_name, model, clip)
        return (with_model_lora(model, lora, strength_model), with_clip_lora(clip, lora, strength_clip))


@node("LoraLoaderModelOnly", display_name="Load LoRA (model only)", category="loaders",
      outputs=[Out(MODEL, "MODEL")], provenance=Provenance("loras", ("strength_model",)))
class LoraLoaderModelOnly:
    """Applies a LoRA's diffusion-model layers only (its text-encoder layers are left out)."""

    model = Link(MODEL)
    lora_name = Choice(ModelFiles("loras", builtin=[BUILTIN_LORA]))
    strength_model = Float(1.0, **STRENGTH)

    def fingerprint(self, paths: Paths, lora_name: str, **_: Any) -> str:
        return lora_fingerprint(paths, lora_name)

    def run(self, ctx: RunContext, model: ModelHandle, lora_name: str, strength_model: float) -> tuple:
        if strength_model == 0:
            return (model,)
        return (with_model_lora(model, load_lora(ctx.paths, lora_name, model, None), strength_model),)
