"""ControlNet nodes: load a ControlNet, and attach it with a hint image to conditioning.

Applying only records the ControlNet on the conditioning entries (nodes.conditioning.value);
the sampler runs it at each step its start/end percent covers (nodes.sampling.control).
Several applied in a row are chained: their residuals add up, as in ComfyUI.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import ModelFiles, Paths
from engine.types import CONDITIONING, IMAGE, MASK, MODEL, VAE, Choice, Float, Link
from nodes.conditioning.value import AppliedControl, Conditioning
from nodes.loaders import file_stamp
from nodes.models.controlnet_loading import ControlNetHandle, load_controlnet
from nodes.models.handles import ModelHandle
from nodes.models.runtime import runtime_from_settings

CONTROL_NET = "CONTROL_NET"


def _load(ctx: RunContext, name: str, model: ModelHandle | None = None) -> ControlNetHandle:
    runtime = runtime_from_settings(ctx.settings)
    return load_controlnet(ctx.paths.model_path("controlnet", name), runtime.dtype, runtime.device,
                           base_unet=model.unet if model is not None else None, name=name,
                           memory_format=runtime.memory_format)


def _fingerprint(paths: Paths, name: str) -> str:
    try:
        return file_stamp(paths.model_path("controlnet", name))
    except FileNotFoundError:
        return "missing"


@node("ControlNetLoader", display_name="Load ControlNet Model", category="loaders",
      outputs=[Out(CONTROL_NET, "CONTROL_NET")], uses_settings=["precision", "device"])
class ControlNetLoader:
    """Loads a ControlNet from models/controlnet (original single-file or diffusers layout; SD1.x, SD2.x, SDXL,
    union ControlNets, Control-LoRAs, T2I-Adapters), told apart by its keys as ComfyUI does."""

    control_net_name = Choice(ModelFiles("controlnet"))

    def fingerprint(self, paths: Paths, control_net_name: str) -> str:
        return _fingerprint(paths, control_net_name)

    def run(self, ctx: RunContext, control_net_name: str) -> tuple:
        return (_load(ctx, control_net_name),)


@node("DiffControlNetLoader", display_name="Load ControlNet Model (diff)", category="loaders",
      outputs=[Out(CONTROL_NET, "CONTROL_NET")], uses_settings=["precision", "device"])
class DiffControlNetLoader:
    """Loads a ControlNet; one saved as a difference to its base model gets the model's weights added."""

    model = Link(MODEL)
    control_net_name = Choice(ModelFiles("controlnet"))

    def fingerprint(self, paths: Paths, control_net_name: str) -> str:
        return _fingerprint(paths, control_net_name)

    def run(self, ctx: RunContext, model: ModelHandle, control_net_name: str) -> tuple:
        return (_load(ctx, control_net_name, model),)


def _hint(image: torch.Tensor) -> torch.Tensor:
    """IMAGE [B, H, W, C] → the ControlNet's [B, C, H, W]."""
    return image.movedim(-1, 1)


@node("ControlNetApply", display_name="Apply ControlNet (OLD)", category="conditioning/controlnet",
      outputs=[Out(CONDITIONING, "CONDITIONING")], deprecated=True)
class ControlNetApply:
    """Applies a ControlNet to one conditioning (and, as ComfyUI does, to a negative without its own)."""

    conditioning = Link(CONDITIONING)
    control_net = Link(CONTROL_NET)
    image = Link(IMAGE)
    strength = Float(1.0, min=0.0, max=10.0, step=0.01)

    def run(self, ctx: RunContext, conditioning: Conditioning, control_net: ControlNetHandle, image,
            strength: float) -> tuple:
        if strength == 0:
            return (conditioning,)
        applied = AppliedControl(control_net.applied_net, control_net.source, _hint(image), strength)
        return (tuple(e.with_(control=e.control + (applied,), control_to_uncond=True) for e in conditioning),)


@node("ControlNetApplyAdvanced", display_name="Apply ControlNet", category="conditioning/controlnet",
      outputs=[Out(CONDITIONING, "positive"), Out(CONDITIONING, "negative")])
class ControlNetApplyAdvanced:
    """Applies a ControlNet to positive and negative conditioning over part of the schedule."""

    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    control_net = Link(CONTROL_NET)
    image = Link(IMAGE)
    strength = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent = Float(1.0, min=0.0, max=1.0, step=0.001)
    vae = Link(VAE, optional=True, tooltip="Only for ControlNets whose hint is a latent; SD1.x/SD2.x ones "
                                           "take the image and ignore it.")

    def run(self, ctx: RunContext, positive: Conditioning, negative: Conditioning, control_net: ControlNetHandle,
            image, strength: float, start_percent: float, end_percent: float, vae=None) -> tuple:
        if strength == 0:
            return (positive, negative)
        hint = _hint(image)
        # As ComfyUI: entries that had the same controls share one new chain, so positive and negative
        # keep identical controls and the sampler runs each ControlNet once per step for both.
        chains: dict[tuple, tuple] = {}

        def chained(entry):
            if entry.control not in chains:
                applied = AppliedControl(control_net.applied_net, control_net.source, hint, strength, start_percent,
                                         end_percent)
                chains[entry.control] = entry.control + (applied,)
            return entry.with_(control=chains[entry.control])

        return (tuple(map(chained, positive)), tuple(map(chained, negative)))


# ComfyUI's comfy/cldm/control_types.py: the control type numbers of union ControlNets.
UNION_CONTROLNET_TYPES = {"auto": -1, "openpose": 0, "depth": 1, "hed/pidi/scribble/ted": 2,
                          "canny/lineart/anime_lineart/mlsd": 3, "normal": 4, "segment": 5, "tile": 6, "repaint": 7}


@node("SetUnionControlNetType", category="conditioning/controlnet", outputs=[Out(CONTROL_NET, "CONTROL_NET")])
class SetUnionControlNetType:
    """Says which kind of hint a union ControlNet is given ("auto": let it tell); other ControlNets ignore it."""

    control_net = Link(CONTROL_NET)
    type = Choice(list(UNION_CONTROLNET_TYPES))

    def run(self, ctx: RunContext, control_net: ControlNetHandle, type: str) -> tuple:
        number = UNION_CONTROLNET_TYPES.get(type, -1)
        return (replace(control_net, control_type=(number,) if number >= 0 else ()),)


@node("ControlNetInpaintingAliMamaApply", category="conditioning/controlnet",
      outputs=[Out(CONDITIONING, "positive"), Out(CONDITIONING, "negative")])
class ControlNetInpaintingAliMamaApply:
    """Applies an inpainting ControlNet with the mask of the region to fill; ControlNets that take no mask
    (every SD1.x/SDXL one) are applied to the image as "Apply ControlNet" does, as in ComfyUI."""

    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    control_net = Link(CONTROL_NET)
    vae = Link(VAE)
    image = Link(IMAGE)
    mask = Link(MASK)
    strength = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent = Float(1.0, min=0.0, max=1.0, step=0.001)

    def run(self, ctx: RunContext, positive: Conditioning, negative: Conditioning, control_net: ControlNetHandle,
            vae, image, mask, strength: float, start_percent: float, end_percent: float) -> tuple:
        if getattr(control_net.config, "concat_mask", False):
            raise ValueError(f"ControlNet {control_net.source!r} takes the inpainting mask with its hint "
                             "(AliMama's SD3/Flux inpainting ControlNets); those models are not supported")
        return ControlNetApplyAdvanced().run(ctx, positive, negative, control_net, image, strength, start_percent,
                                             end_percent, vae)
