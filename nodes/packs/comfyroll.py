"""Suzie1/ComfyUI_Comfyroll_CustomNodes' nodes that SD workflows use: LoRA (nodes/nodes_lora.py), conversion
(nodes/conversion.py), aspect ratios (nodes/nodes_aspect_ratio.py) and the animation utilities and simple
schedulers (animation_nodes/, nodes/nodes_animation_schedulers.py)."""

from __future__ import annotations

from typing import Any

import torch

from engine.context import RunContext
from engine.declare import Out, Provenance, node
from engine.paths import ModelFiles, Paths
from engine.types import CLIP, CONDITIONING, IMAGE, LATENT, MODEL, Choice, Float, Int, Link, String
from nodes.controlnet import CONTROL_NET, ControlNetApply
from nodes.latent import check_latent_size
from nodes.lora import load_lora, lora_fingerprint, with_clip_lora, with_model_lora
from nodes.models.builtin import BUILTIN_LORA

PACK = "🧩 Comfyroll Studio"
WIKI = "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes/wiki"
HELP_URL = f"{WIKI}/LoRA-Nodes#cr-load-lora"
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


LORA_STACK = "LORA_STACK"   # (lora_name, model_weight, clip_weight) per LoRA, as Efficiency Nodes' stacks


@node("CR LoRA Stack", display_name="💊 CR LoRA Stack", category="🧩 Comfyroll Studio/✨ Essential/💊 LoRA",
      outputs=[Out(LORA_STACK, "LORA_STACK"), Out("STRING", "show_help")])
class CRLoRAStack:
    """Up to three LoRAs with their weights, after those of a connected stack; Off or "None" leaves one out."""

    switch_1 = Choice(["Off", "On"])
    lora_name_1 = Choice(LoraFilesOrNone("loras", builtin=[BUILTIN_LORA]))
    model_weight_1 = Float(1.0, **STRENGTH)
    clip_weight_1 = Float(1.0, **STRENGTH)
    switch_2 = Choice(["Off", "On"])
    lora_name_2 = Choice(LoraFilesOrNone("loras", builtin=[BUILTIN_LORA]))
    model_weight_2 = Float(1.0, **STRENGTH)
    clip_weight_2 = Float(1.0, **STRENGTH)
    switch_3 = Choice(["Off", "On"])
    lora_name_3 = Choice(LoraFilesOrNone("loras", builtin=[BUILTIN_LORA]))
    model_weight_3 = Float(1.0, **STRENGTH)
    clip_weight_3 = Float(1.0, **STRENGTH)
    lora_stack = Link(LORA_STACK, optional=True)

    def fingerprint(self, paths: Paths, **constants: Any) -> str:
        names = [constants.get(f"lora_name_{i}", NO_LORA) for i in (1, 2, 3)]
        return "|".join("" if name == NO_LORA else lora_fingerprint(paths, name) for name in names)

    def run(self, ctx: RunContext, switch_1: str, lora_name_1: str, model_weight_1: float, clip_weight_1: float,
            switch_2: str, lora_name_2: str, model_weight_2: float, clip_weight_2: float, switch_3: str,
            lora_name_3: str, model_weight_3: float, clip_weight_3: float,
            lora_stack: list[tuple[str, float, float]] | None = None) -> tuple:
        stack = [entry for entry in lora_stack or [] if entry[0] != NO_LORA]
        for switch, name, model_weight, clip_weight in (
                (switch_1, lora_name_1, model_weight_1, clip_weight_1),
                (switch_2, lora_name_2, model_weight_2, clip_weight_2),
                (switch_3, lora_name_3, model_weight_3, clip_weight_3)):
            if name != NO_LORA and switch == "On":
                stack.append((name, model_weight, clip_weight))
        return (stack, f"{WIKI}/LoRA-Nodes#cr-lora-stack")


@node("CR Apply LoRA Stack", display_name="💊 CR Apply LoRA Stack", category="🧩 Comfyroll Studio/✨ Essential/💊 LoRA",
      outputs=[Out(MODEL, "MODEL"), Out(CLIP, "CLIP"), Out("STRING", "show_help")])
class CRApplyLoRAStack:
    """Each LoRA of the stack applied in turn to the model and clip."""

    model = Link(MODEL)
    clip = Link(CLIP)
    lora_stack = Link(LORA_STACK)

    def run(self, ctx: RunContext, model: Any, clip: Any, lora_stack: list[tuple[str, float, float]]) -> tuple:
        for name, model_weight, clip_weight in lora_stack or []:
            lora = load_lora(ctx.paths, name, model, clip)
            model, clip = with_model_lora(model, lora, model_weight), with_clip_lora(clip, lora, clip_weight)
        return (model, clip, f"{WIKI}/LoRA-Nodes#cr-apply-lora-stack")


# --- conversion ------------------------------------------------------------------------------------

@node("CR Integer To String", display_name="🔧 CR Integer To String", category=f"{PACK}/🛠️ Utils/🔧 Conversion",
      outputs=[Out("STRING", "STRING"), Out("STRING", "show_help")])
class CRIntegerToString:
    """The integer written in decimal."""

    int_ = Int(0, min=0, max=0xFFFFFFFFFFFFFFFF)

    def run(self, ctx: RunContext, int_: int) -> tuple:
        return (f"{int_}", f"{WIKI}/Conversion-Nodes#cr-integer-to-string")


@node("CR Float To String", display_name="🔧 CR Float To String", category=f"{PACK}/🛠️ Utils/🔧 Conversion",
      outputs=[Out("STRING", "STRING"), Out("STRING", "show_help")])
class CRFloatToString:
    """The float as Python writes it (`1.0`, `0.75`)."""

    float_ = Float(0.0, min=0.0, max=1000000.0)

    def run(self, ctx: RunContext, float_: float) -> tuple:
        return (f"{float(float_)}", f"{WIKI}/Conversion-Nodes#cr-float-to-string")


# --- aspect ratios ---------------------------------------------------------------------------------

# Preset → (width, height), in the pack's list order; "custom" keeps the width and height inputs.
SD15_RATIOS = {"1:1 square 512x512": (512, 512), "1:1 square 1024x1024": (1024, 1024),
               "2:3 portrait 512x768": (512, 768), "3:4 portrait 512x682": (512, 682),
               "3:2 landscape 768x512": (768, 512), "4:3 landscape 682x512": (682, 512),
               "16:9 cinema 910x512": (910, 512), "1.85:1 cinema 952x512": (952, 512),
               "2:1 cinema 1024x512": (1024, 512), "2.39:1 anamorphic 1224x512": (1224, 512)}
SDXL_RATIOS = {"1:1 square 1024x1024": (1024, 1024), "3:4 portrait 896x1152": (896, 1152),
               "5:8 portrait 832x1216": (832, 1216), "9:16 portrait 768x1344": (768, 1344),
               "9:21 portrait 640x1536": (640, 1536), "4:3 landscape 1152x896": (1152, 896),
               "3:2 landscape 1216x832": (1216, 832), "16:9 landscape 1344x768": (1344, 768),
               "21:9 landscape 1536x640": (1536, 640)}
ASPECT_OUTPUTS = [Out("INT", "width"), Out("INT", "height"), Out("FLOAT", "upscale_factor"), Out("INT", "batch_size"),
                  Out(LATENT, "empty_latent"), Out("STRING", "show_help")]


def sized_by_preset(ctx: RunContext, ratios: dict[str, tuple[int, int]], width: int, height: int, aspect_ratio: str,
                 swap_dimensions: str, upscale_factor: float, batch_size: int, anchor: str) -> tuple:
    """The preset's size (or width × height for "custom"), swapped when asked, and an empty latent of it."""
    width, height = ratios.get(aspect_ratio, (width, height))
    if swap_dimensions == "On":
        width, height = height, width
    check_latent_size(ctx, width, height, batch_size, "width, height, aspect_ratio or batch_size")
    latent = torch.zeros([batch_size, 4, height // 8, width // 8])
    return (width, height, upscale_factor, batch_size, {"samples": latent}, f"{WIKI}/Aspect-Ratio-Nodes#{anchor}")


@node("CR SD1.5 Aspect Ratio", display_name="🔳 CR SD1.5 Aspect Ratio", category=f"{PACK}/✨ Essential/🔳 Aspect Ratio",
      outputs=ASPECT_OUTPUTS)
class CRAspectRatioSD15:
    """Width and height from an SD1.5 preset, with an empty latent of that size."""

    width = Int(512, min=64, max=8192)
    height = Int(512, min=64, max=8192)
    aspect_ratio = Choice(["custom", *SD15_RATIOS])
    swap_dimensions = Choice(["Off", "On"])
    upscale_factor = Float(1.0, min=0.1, max=100.0, step=0.1)
    batch_size = Int(1, min=1, max=64)

    def run(self, ctx: RunContext, width: int, height: int, aspect_ratio: str, swap_dimensions: str,
            upscale_factor: float, batch_size: int) -> tuple:
        return sized_by_preset(ctx, SD15_RATIOS, width, height, aspect_ratio, swap_dimensions, upscale_factor,
                               batch_size, "cr-sd15-aspect-ratio")


@node("CR SDXL Aspect Ratio", display_name="🔳 CR SDXL Aspect Ratio", category=f"{PACK}/✨ Essential/🔳 Aspect Ratio",
      outputs=ASPECT_OUTPUTS)
class CRAspectRatioSDXL:
    """Width and height from an SDXL preset, with an empty latent of that size."""

    width = Int(1024, min=64, max=8192)
    height = Int(1024, min=64, max=8192)
    aspect_ratio = Choice(["custom", *SDXL_RATIOS])
    swap_dimensions = Choice(["Off", "On"])
    upscale_factor = Float(1.0, min=0.1, max=100.0, step=0.1)
    batch_size = Int(1, min=1, max=64)

    def run(self, ctx: RunContext, width: int, height: int, aspect_ratio: str, swap_dimensions: str,
            upscale_factor: float, batch_size: int) -> tuple:
        return sized_by_preset(ctx, SDXL_RATIOS, width, height, aspect_ratio, swap_dimensions, upscale_factor,
                               batch_size, "cr-sdxl-aspect-ratio")


# --- core and ControlNet ---------------------------------------------------------------------------

@node("CR Prompt Text", display_name="⚙️ CR Prompt Text", category=f"{PACK}/✨ Essential/📦 Core",
      outputs=[Out("STRING", "prompt"), Out("STRING", "show_help")])
class CRPromptText:
    """A multiline prompt text, passed on."""

    prompt = String("prompt", multiline=True)

    def run(self, ctx: RunContext, prompt: str) -> tuple:
        return (prompt, f"{WIKI}/Core-Nodes#cr-prompt-text")


@node("CR Seed", display_name="🌱 CR Seed", category=f"{PACK}/✨ Essential/📦 Core",
      outputs=[Out("INT", "seed"), Out("STRING", "show_help")], output_node=True)
class CRSeed:
    """A seed, passed on."""

    seed = Int(0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True)   # the editor adds one to any "seed"

    def run(self, ctx: RunContext, seed: int) -> tuple:
        return (seed, f"{WIKI}/Core-Nodes#cr-seed")


@node("CR Apply ControlNet", display_name="🕹️ CR Apply ControlNet", category=f"{PACK}/✨ Essential/🕹️ ControlNet",
      outputs=[Out(CONDITIONING, "CONDITIONING"), Out("STRING", "show_help")])
class CRApplyControlNet:
    """Apply ControlNet (OLD), with an On/Off switch: Off, or strength 0, passes the conditioning through."""

    conditioning = Link(CONDITIONING)
    control_net = Link(CONTROL_NET)
    image = Link(IMAGE)
    switch = Choice(["On", "Off"])
    strength = Float(1.0, min=0.0, max=10.0, step=0.01)

    def run(self, ctx: RunContext, conditioning: Any, control_net: Any, image: Any, switch: str,
            strength: float) -> tuple:
        help_url = f"{WIKI}/ControlNet-Nodes#cr-apply-controlnet"
        if switch == "Off" or strength == 0:
            return (conditioning, help_url)
        return (ControlNetApply().run(ctx, conditioning, control_net, image, strength)[0], help_url)
