"""Model merging nodes: blend, add or subtract two models' weights, as ComfyUI's advanced/model_merging.

Merges are weight patches on the first model's handle (`nodes.models.merging`): the loaded modules
are never changed, and the blend is computed only while the merged model samples, encodes or is
saved (CheckpointSave). Both models must be of one family; weights whose shapes differ are kept.
"""

from __future__ import annotations

from dataclasses import replace

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import CLIP, MODEL, Float, Link
from nodes.models.handles import ClipHandle, ModelHandle
from nodes.models.lora_weights import TEXT_ENCODER_PARTS, UNET_PART
from nodes.models.merging import block_ratio, ldm_unet_names, merge_patch, weighted_patch

CATEGORY = "advanced/model_merging"
RATIO = dict(min=0.0, max=1.0, step=0.01)


def _source(a: ModelHandle | ClipHandle, b: ModelHandle | ClipHandle) -> str:
    return f"merge({a.source}, {b.source})"


@node("ModelMergeSimple", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class ModelMergeSimple:
    """model1 · ratio + model2 · (1 - ratio), weight by weight."""

    model1 = Link(MODEL)
    model2 = Link(MODEL)
    ratio = Float(1.0, **RATIO, tooltip="How much of model1 to keep (1: model1 unchanged).")

    def run(self, ctx: RunContext, model1: ModelHandle, model2: ModelHandle, ratio: float) -> tuple:
        patches = merge_patch(UNET_PART, model1.unet, model2.unet, model2.patches, lambda _: ratio,
                              _source(model1, model2))
        return (replace(model1, patches=model1.patches + tuple(patches)),)


@node("ModelMergeBlocks", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class ModelMergeBlocks:
    """ModelMergeSimple with one ratio for the input blocks, one for the middle and one for the output
    blocks (the time embedding and other weights take the input ratio, as in ComfyUI)."""

    model1 = Link(MODEL)
    model2 = Link(MODEL)
    input = Float(1.0, **RATIO)
    middle = Float(1.0, **RATIO)
    out = Float(1.0, **RATIO)

    def run(self, ctx: RunContext, model1: ModelHandle, model2: ModelHandle, input: float, middle: float,
            out: float) -> tuple:
        ratios = {"input": input, "middle": middle, "out": out}
        names = ldm_unet_names(model1.unet)
        patches = merge_patch(UNET_PART, model1.unet, model2.unet, model2.patches,
                              lambda name: block_ratio(names.get(name, ""), ratios), _source(model1, model2))
        return (replace(model1, patches=model1.patches + tuple(patches)),)


@node("ModelMergeSubtract", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class ModelMergeSubtract:
    """(model1 - model2) · multiplier: the difference two fine-tunes make, to add elsewhere."""

    model1 = Link(MODEL)
    model2 = Link(MODEL)
    multiplier = Float(1.0, min=-10.0, max=10.0, step=0.01)

    def run(self, ctx: RunContext, model1: ModelHandle, model2: ModelHandle, multiplier: float) -> tuple:
        patch = weighted_patch(UNET_PART, model1.unet, model2.unet, model2.patches, -multiplier, multiplier,
                               _source(model1, model2))
        return (replace(model1, patches=model1.patches + (patch,)),)


@node("ModelMergeAdd", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class ModelMergeAdd:
    """model1 + model2, weight by weight (with ModelMergeSubtract: add a difference to another model)."""

    model1 = Link(MODEL)
    model2 = Link(MODEL)

    def run(self, ctx: RunContext, model1: ModelHandle, model2: ModelHandle) -> tuple:
        patch = weighted_patch(UNET_PART, model1.unet, model2.unet, model2.patches, 1.0, 1.0, _source(model1, model2))
        return (replace(model1, patches=model1.patches + (patch,)),)


@node("CLIPMergeSimple", category=CATEGORY, outputs=[Out(CLIP, "CLIP")])
class CLIPMergeSimple:
    """clip1 · ratio + clip2 · (1 - ratio) for each text encoder (position ids and logit scale kept)."""

    clip1 = Link(CLIP)
    clip2 = Link(CLIP)
    ratio = Float(1.0, **RATIO, tooltip="How much of clip1 to keep (1: clip1 unchanged).")

    def run(self, ctx: RunContext, clip1: ClipHandle, clip2: ClipHandle, ratio: float) -> tuple:
        patches: list = []
        for part, own, other in zip(TEXT_ENCODER_PARTS, clip1.text_encoders, clip2.text_encoders):
            patches += merge_patch(part, own, other, clip2.patches, lambda _: ratio, _source(clip1, clip2),
                                   skip=lambda name: name.endswith((".position_ids", ".logit_scale")))
        return (replace(clip1, patches=clip1.patches + tuple(patches)),)
