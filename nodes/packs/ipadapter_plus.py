"""cubiq's ComfyUI_IPAdapter_plus pack: IP-Adapter (image prompts) for SD1.5 and SDXL, base, plus,
plus-face and full-face, under the pack's class names, inputs and outputs.

Each apply node returns a new MODEL handle carrying an `IPAdapterHook` (nodes.models.ipadapter_attention):
the shared UNet is never changed; the hook is attached while sampling only. Files come from
models/ipadapter; CLIP vision towers from models/clip_vision. FaceID models (InsightFace) are not
supported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import ModelFiles, Paths
from engine.types import IMAGE, MASK, MODEL, Boolean, Choice, Float, Link
from nodes.clip_vision import CLIP_VISION
from nodes.loaders import file_stamp
from nodes.models.clip_vision_loading import ClipVisionModel, load_clip_vision, preprocess
from nodes.models.handles import ModelHandle
from nodes.models.ipadapter_attention import (
    EMBEDS_SCALING,
    WEIGHT_TYPES,
    IPAdapterHook,
    layer_weights,
    percent_to_sigma,
)
from nodes.models.ipadapter_model import IPAdapterWeights, load_ipadapter, project_embeds
from nodes.models.runtime import runtime_from_settings
from nodes.packs.ipadapter_presets import preset_files

IPADAPTER = "IPADAPTER"
EMBEDS = "EMBEDS"
CATEGORY = "ipadapter"
COMBINE = ["concat", "add", "subtract", "average", "norm average"]
PRESETS = ["LIGHT - SD1.5 only (low strength)", "STANDARD (medium strength)", "VIT-G (medium strength)",
           "PLUS (high strength)", "PLUS FACE (portraits)", "FULL FACE - SD1.5 only (portraits stronger)"]
START = dict(min=0.0, max=1.0, step=0.001)


@dataclass(frozen=True)
class IPAdapterPipeline:
    """What flows on IPADAPTER: the adapter, and the CLIP vision tower the unified loader chose."""

    weights: IPAdapterWeights
    clip_vision: ClipVisionModel | None = None

    @property
    def estimated_nbytes(self) -> int:
        vision = self.clip_vision.estimated_nbytes if self.clip_vision is not None else 0
        return self.weights.nbytes + vision


# --- encoding -----------------------------------------------------------------------------------------

def encode_for(weights: IPAdapterWeights, clip_vision: ClipVisionModel, image: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """The CLIP embeddings an adapter reads: penultimate hidden states (plus, full) or the image embedding.
    A mask multiplies the normalised pixels (the pack's encode_image_masked)."""
    if mask is None:
        out = clip_vision.encode(image, crop=True)
        return out.penultimate_hidden_states if weights.is_plus else out.image_embeds
    size = clip_vision.image_size
    pixels = preprocess(image.cpu(), size, crop=True) * clip_mask(mask, size)[:, None]
    param = next(clip_vision.model.parameters())
    with torch.inference_mode():
        out = clip_vision.model(pixel_values=pixels.to(param.device, param.dtype), output_hidden_states=True)
    return (out.hidden_states[-2] if weights.is_plus else out.image_embeds).float().cpu()


def clip_mask(mask: torch.Tensor, size: int) -> torch.Tensor:
    """A MASK centre-cropped to a square and resized (bicubic, antialiased) to the encoder's size."""
    mask = mask.reshape(-1, mask.shape[-2], mask.shape[-1]).float()
    if mask.shape[1:] == (size, size):
        return mask
    side = min(mask.shape[1], mask.shape[2])
    top, left = (mask.shape[1] - side) // 2, (mask.shape[2] - side) // 2
    square_mask = mask[:, top:top + side, left:left + side].unsqueeze(1)
    return F.interpolate(square_mask, size=(size, size), mode="bicubic", antialias=True).squeeze(1)


def uncond_embeds(weights: IPAdapterWeights, clip_vision: ClipVisionModel | None, like: torch.Tensor) -> torch.Tensor:
    """The pack's negative: a black image's hidden states for plus models, zeros otherwise."""
    if not weights.is_plus:
        return torch.zeros_like(like)
    if clip_vision is None:
        raise ValueError("Missing CLIPVision model: plus models encode a black image as their negative")
    size = clip_vision.image_size
    return encode_for(weights, clip_vision, torch.zeros(1, size, size, 3))


def combine(embeds: torch.Tensor, method: str) -> torch.Tensor:
    """Several reference images' embeddings into one (the pack's combine_embeds)."""
    if method == "concat" or embeds.shape[0] == 1:
        return embeds
    if method == "add":
        return embeds.sum(dim=0, keepdim=True)
    if method == "subtract":
        return (embeds[0] - embeds[1:].mean(dim=0)).unsqueeze(0)
    if method == "average":
        return embeds.mean(dim=0, keepdim=True)
    return (embeds / embeds.norm(dim=0, keepdim=True)).mean(dim=0, keepdim=True)  # norm average


def _unpack(ipadapter: IPAdapterPipeline, clip_vision: ClipVisionModel | None
            ) -> tuple[IPAdapterWeights, ClipVisionModel | None]:
    return ipadapter.weights, clip_vision if clip_vision is not None else ipadapter.clip_vision


def apply_ipadapter(model: ModelHandle, weights: IPAdapterWeights, cond_embeds: torch.Tensor,
                    uncond: torch.Tensor, weight: float, weight_type: str, start_at: float, end_at: float,
                    embeds_scaling: str = "V only", combine_embeds: str = "concat",
                    attn_mask: torch.Tensor | None = None, unfold_batch: bool = False) -> ModelHandle:
    """The pack's ipadapter_execute on embeddings: project, weight, and hook into the model."""
    uncond = uncond[:cond_embeds.shape[0]] if uncond.shape[0] >= cond_embeds.shape[0] else \
        torch.cat([uncond, uncond[-1:].repeat(cond_embeds.shape[0] - uncond.shape[0], *([1] * (uncond.ndim - 1)))])
    if combine_embeds != "concat" and cond_embeds.shape[0] > 1 and not unfold_batch:
        cond_embeds, uncond = combine(cond_embeds, combine_embeds), uncond[:1]
    cond_tokens, uncond_tokens = project_embeds(weights, cond_embeds), project_embeds(weights, uncond)
    if not unfold_batch and cond_tokens.shape[0] > 1:  # concat: every image's tokens side by side
        cond_tokens = cond_tokens.reshape(1, -1, cond_tokens.shape[-1])
        uncond_tokens = uncond_tokens.reshape(1, -1, uncond_tokens.shape[-1])
    hook = IPAdapterHook(weights, cond_tokens, uncond_tokens, layer_weights(weight, weight_type, weights.is_sdxl),
                         weight_type, percent_to_sigma(model.model_sampling, start_at),
                         percent_to_sigma(model.model_sampling, end_at), embeds_scaling, attn_mask, unfold_batch)
    return replace(model, hooks=model.hooks + (hook,))


# --- loaders ------------------------------------------------------------------------------------------

@node("IPAdapterModelLoader", display_name="IPAdapter Model Loader", category="ipadapter/loaders",
      outputs=[Out(IPADAPTER, "IPADAPTER")])
class IPAdapterModelLoader:
    """Loads an IP-Adapter file (models/ipadapter)."""

    ipadapter_file = Choice(ModelFiles("ipadapter"))

    def run(self, ctx: RunContext, ipadapter_file: str) -> tuple:
        return (IPAdapterPipeline(load_ipadapter(ctx.paths.model_path("ipadapter", ipadapter_file), ipadapter_file)),)


@node("IPAdapterUnifiedLoader", display_name="IPAdapter Unified Loader", category=CATEGORY,
      outputs=[Out(MODEL, "model"), Out(IPADAPTER, "ipadapter")], uses_settings=["precision", "device"])
class IPAdapterUnifiedLoader:
    """Picks the IP-Adapter and CLIP vision files of a preset by their names, for the model's family."""

    model = Link(MODEL)
    preset = Choice(PRESETS)
    ipadapter = Link(IPADAPTER, optional=True)

    def fingerprint(self, paths: Paths, preset: str) -> str:
        """The files the preset finds for either family (the model's is known only when it runs)."""
        stamps = []
        for is_sdxl in (False, True):
            try:
                vision, adapter = preset_files(paths, preset, is_sdxl)
                stamps += [file_stamp(paths.model_path("clip_vision", vision)),
                           file_stamp(paths.model_path("ipadapter", adapter))]
            except (FileNotFoundError, ValueError):
                stamps.append("missing")
        return "|".join(stamps)

    def run(self, ctx: RunContext, model: ModelHandle, preset: str, ipadapter: IPAdapterPipeline | None) -> tuple:
        vision_name, adapter_name = preset_files(ctx.paths, preset, model.family.is_sdxl)
        runtime = runtime_from_settings(ctx.settings)
        vision = load_clip_vision(ctx.paths.model_path("clip_vision", vision_name), runtime.dtype, runtime.device,
                                  name=vision_name)
        weights = load_ipadapter(ctx.paths.model_path("ipadapter", adapter_name), adapter_name)
        return (model, IPAdapterPipeline(weights, vision))


# --- apply --------------------------------------------------------------------------------------------

@node("IPAdapter", display_name="IPAdapter", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class IPAdapter:
    """The simple apply node: standard, prompt-first (ease out) or style transfer."""

    model = Link(MODEL)
    ipadapter = Link(IPADAPTER)
    image = Link(IMAGE)
    weight = Float(1.0, min=-1, max=3, step=0.05)
    start_at = Float(0.0, **START)
    end_at = Float(1.0, **START)
    weight_type = Choice(["standard", "prompt is more important", "style transfer"])
    attn_mask = Link(MASK, optional=True)

    def run(self, ctx: RunContext, model, ipadapter, image, weight, start_at, end_at, weight_type, attn_mask) -> tuple:
        if ipadapter.clip_vision is None:
            raise ValueError("CLIPVision model not present in the pipeline. Please load the models with the "
                             "IPAdapterUnifiedLoader node.")
        kind = {"style transfer": "style transfer", "prompt is more important": "ease out"}.get(weight_type, "linear")
        cond = encode_for(ipadapter.weights, ipadapter.clip_vision, image)
        uncond = uncond_embeds(ipadapter.weights, ipadapter.clip_vision, cond)
        return (apply_ipadapter(model, ipadapter.weights, cond, uncond, weight, kind, start_at, end_at,
                                attn_mask=attn_mask),)


@node("IPAdapterAdvanced", display_name="IPAdapter Advanced", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class IPAdapterAdvanced:
    """Every option: weight types, combining several images, a negative image, embeds scaling, a mask."""

    model = Link(MODEL)
    ipadapter = Link(IPADAPTER)
    image = Link(IMAGE)
    weight = Float(1.0, min=-1, max=5, step=0.05)
    weight_type = Choice(WEIGHT_TYPES)
    combine_embeds = Choice(COMBINE)
    start_at = Float(0.0, **START)
    end_at = Float(1.0, **START)
    embeds_scaling = Choice(EMBEDS_SCALING)
    image_negative = Link(IMAGE, optional=True)
    attn_mask = Link(MASK, optional=True)
    clip_vision = Link(CLIP_VISION, optional=True)

    def run(self, ctx: RunContext, model, ipadapter, image, weight, weight_type, combine_embeds, start_at, end_at,
            embeds_scaling, image_negative, attn_mask, clip_vision) -> tuple:
        weights, vision = _unpack(ipadapter, clip_vision)
        if vision is None:
            raise ValueError("Missing CLIPVision model.")
        cond = encode_for(weights, vision, image)
        uncond = encode_for(weights, vision, image_negative) if image_negative is not None else \
            uncond_embeds(weights, vision, cond)
        return (apply_ipadapter(model, weights, cond, uncond, weight, weight_type, start_at, end_at, embeds_scaling,
                                combine_embeds, attn_mask),)


@node("IPAdapterApply", display_name="Apply IPAdapter", category=CATEGORY, outputs=[Out(MODEL, "MODEL")])
class IPAdapterApply:
    """The pack's first apply node, kept for old workflows: original weighs the image attention's
    output, linear its keys and values, channel penalty its keys and mean values."""

    ipadapter = Link(IPADAPTER)
    clip_vision = Link(CLIP_VISION)
    image = Link(IMAGE)
    model = Link(MODEL)
    weight = Float(1.0, min=-1, max=3, step=0.05)
    noise = Float(0.0, min=0.0, max=1.0, step=0.01)
    weight_type = Choice(["original", "linear", "channel penalty"])
    start_at = Float(0.0, **START)
    end_at = Float(1.0, **START)
    unfold_batch = Boolean(False)
    attn_mask = Link(MASK, optional=True)

    def run(self, ctx: RunContext, ipadapter, clip_vision, image, model, weight, noise, weight_type, start_at, end_at,
            unfold_batch, attn_mask) -> tuple:
        if noise > 0:
            raise ValueError("IPAdapterApply: noise > 0 (a distorted negative image) is not supported; use 0 or "
                             "IPAdapterAdvanced with image_negative")
        weights = ipadapter.weights
        cond = encode_for(weights, clip_vision, image)
        uncond = uncond_embeds(weights, clip_vision, cond)
        scaling = {"original": "V only", "linear": "K+V", "channel penalty": "K+mean(V) w/ C penalty"}[weight_type]
        return (apply_ipadapter(model, weights, cond, uncond, weight, "linear", start_at, end_at, scaling,
                                attn_mask=attn_mask, unfold_batch=unfold_batch),)


@node("IPAdapterEncoder", display_name="IPAdapter Encoder", category="ipadapter/embeds",
      outputs=[Out(EMBEDS, "pos_embed"), Out(EMBEDS, "neg_embed")])
class IPAdapterEncoder:
    """CLIP vision embeddings of an image (weighted) and the matching negative, to reuse or combine."""

    ipadapter = Link(IPADAPTER)
    image = Link(IMAGE)
    weight = Float(1.0, min=-1.0, max=3.0, step=0.01)
    mask = Link(MASK, optional=True)
    clip_vision = Link(CLIP_VISION, optional=True)

    def run(self, ctx: RunContext, ipadapter, image, weight, mask, clip_vision) -> tuple:
        weights, vision = _unpack(ipadapter, clip_vision)
        if vision is None:
            raise ValueError("Missing CLIPVision model.")
        cond = encode_for(weights, vision, image, mask)
        uncond = uncond_embeds(weights, vision, cond)
        return (cond * weight if weight != 1 else cond, uncond)


@node("IPAdapterEmbeds", display_name="IPAdapter Embeds", category="ipadapter/embeds", outputs=[Out(MODEL, "MODEL")])
class IPAdapterEmbeds:
    """Applies embeddings made by IPAdapterEncoder (or combined) instead of images."""

    model = Link(MODEL)
    ipadapter = Link(IPADAPTER)
    pos_embed = Link(EMBEDS)
    weight = Float(1.0, min=-1, max=3, step=0.05)
    weight_type = Choice(WEIGHT_TYPES)
    start_at = Float(0.0, **START)
    end_at = Float(1.0, **START)
    embeds_scaling = Choice(EMBEDS_SCALING)
    neg_embed = Link(EMBEDS, optional=True)
    attn_mask = Link(MASK, optional=True)
    clip_vision = Link(CLIP_VISION, optional=True)

    def run(self, ctx: RunContext, model, ipadapter, pos_embed, weight, weight_type, start_at, end_at, embeds_scaling,
            neg_embed, attn_mask, clip_vision) -> tuple:
        weights, vision = _unpack(ipadapter, clip_vision)
        if vision is None and neg_embed is None:
            raise ValueError("Missing CLIPVision model.")
        uncond = neg_embed if neg_embed is not None else uncond_embeds(weights, vision, pos_embed)
        return (apply_ipadapter(model, weights, pos_embed, uncond, weight, weight_type, start_at, end_at,
                                embeds_scaling, attn_mask=attn_mask),)


# --- image prep ---------------------------------------------------------------------------------------

@node("PrepImageForClipVision", display_name="Prep Image For ClipVision", category="ipadapter/utils",
      outputs=[Out(IMAGE, "IMAGE")])
class PrepImageForClipVision:
    """Crops (or pads) to a square at the chosen side and resizes to 224 px with PIL, optionally sharpened."""

    image = Link(IMAGE)
    interpolation = Choice(["LANCZOS", "BICUBIC", "HAMMING", "BILINEAR", "BOX", "NEAREST"])
    crop_position = Choice(["top", "bottom", "left", "right", "center", "pad"])
    sharpening = Float(0.0, min=0, max=1, step=0.05)

    def run(self, ctx: RunContext, image, interpolation, crop_position, sharpening) -> tuple:
        pixels = square(image.movedim(-1, 1), crop_position)
        resample = Image.Resampling[interpolation]
        out = []
        for item in pixels:
            array = (item.clamp(0, 1).movedim(0, -1).numpy() * 255).astype(np.uint8)  # ToPILImage: mul(255).byte()
            resized = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).resize((224, 224), resample)
            out.append(torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).reshape(224, 224, -1))
        result = torch.stack(out)
        if sharpening > 0:
            result = contrast_adaptive_sharpening(result.movedim(-1, 1), sharpening).movedim(1, -1)
        return (result,)


def square(pixels: torch.Tensor, crop_position: str) -> torch.Tensor:
    """[B, C, H, W] → the square the pack keeps: a crop at the named side, or zero padding ("pad")."""
    _, _, oh, ow = pixels.shape
    if crop_position == "pad":
        if oh == ow:
            return pixels
        pad = abs(oh - ow) // 2
        # torchvision's pad((left, top, right, bottom)) as the pack calls it
        return F.pad(pixels, (pad, pad, 0, 0) if oh > ow else (0, 0, pad, pad))
    size = min(oh, ow)
    x, y = (ow - size) // 2, (oh - size) // 2
    if "top" in crop_position:
        y = 0
    elif "bottom" in crop_position:
        y = oh - size
    elif "left" in crop_position:
        x = 0
    elif "right" in crop_position:
        x = ow - size
    return pixels[:, :, y:y + size, x:x + size]


def contrast_adaptive_sharpening(image: torch.Tensor, amount: float) -> torch.Tensor:
    """AMD's contrast-adaptive sharpening on [B, C, H, W], as the pack applies it."""
    img = F.pad(image, pad=(1, 1, 1, 1))
    a, b, c = img[..., :-2, :-2], img[..., :-2, 1:-1], img[..., :-2, 2:]
    d, e, f = img[..., 1:-1, :-2], img[..., 1:-1, 1:-1], img[..., 1:-1, 2:]
    g, h, i = img[..., 2:, :-2], img[..., 2:, 1:-1], img[..., 2:, 2:]
    cross, diag = torch.stack((b, d, e, f, h)), torch.stack((a, c, g, i))
    mn = cross.min(dim=0)[0].clamp(min=0) + diag.min(dim=0)[0].clamp(min=0)
    mx = cross.max(dim=0)[0].clamp(max=1) + diag.max(dim=0)[0].clamp(max=1)
    amp = torch.sqrt(torch.reciprocal(mx) * torch.minimum(mn, 2 - mx))
    w = -amp * (amount * (1 / 5 - 1 / 8) + 1 / 8)
    out = ((b + d + f + h) * w + e) * torch.reciprocal(1 + 4 * w)
    return torch.nan_to_num(out).clamp(0, 1)
