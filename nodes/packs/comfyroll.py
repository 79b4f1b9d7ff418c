"""Suzie1/ComfyUI_Comfyroll_CustomNodes' nodes that SD workflows use (nodes/nodes_lora.py)."""

from __future__ import annotations

from typing import Any

from engine.context import RunContext
from engine.declare import Out, Provenance, node
from engine.paths import ModelFiles, Paths
from engine.types import CLIP, MODEL, Choice, Float, Link
from nodes.lora import load_lora, lora_fingerprint, with_clip_lora, with_model_lora
from nodes.models.builtin import BUILTIN_LORA

HELP_URL = "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes/wiki/LoRA-Nodes#cr-load-lora"
NO_LORA = "None"
STRENGTH = {"min": -10.0, "max": 10.0, "step": 0.01}


class LoraFilesOrNone(ModelFiles):
    """The LoRA files, after the pack's "None" entry."""

    def choices(self, paths: Paths | None) -> list[str]:
        return [NO_LORA] + super().choices(paths)


@node("CR Load LoRA", display_name="💊 CR Load LoRA", category="🧩 Comfyroll Studio/✨ Essential/💊 LoRA",
      outputs=[Out(MODEL, "MODEL"), Out(CLIP, "CLIP"), Out("STRING", "show_help")],
      provenance=Provenance("loras", ("strength_model", "strength_clip")))
class CRLoadLoRA:
    """LoraLoader with an On/Off switch and a "None" choice, both passing model and clip through."""

    model = Link(MODEL)
    clip = Link(CLIP)
    switch = Choice(["On", "Off"])
    lora_name = Choice(LoraFilesOrNone("loras", builtin=[BUILTIN_LORA]))
    strength_model = Float(1.0, **STRENGTH)
    strength_clip = Float(1.0, **STRENGTH)

    def fingerprint(self, paths: Paths, lora_name: str = NO_LORA, **_: Any) -> str:
        return "" if lora_name == NO_LORA else lora_fingerprint(paths, lora_name)

    def run(self, ctx: RunContext, model: Any, clip: Any, switch: str, lora_name: str, strength_model: float,
            strength_clip: float) -> tuple:
        if (strength_model == 0 and strength_clip == 0) or switch == "Off" or lora_name == NO_LORA:
            return (model, clip, HELP_URL)
        lora = load_lora(ctx.paths, lora_name, model, clip)
        return (with_model_lora(model, lora, strength_model), with_clip_lora(clip, lora, strength_clip), HELP_URL)
