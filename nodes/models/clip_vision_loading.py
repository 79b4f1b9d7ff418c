"""CLIP vision encoders (ComfyUI's `clip_vision` files, and the image tower inside unCLIP checkpoints)
as transformers' `CLIPVisionModelWithProjection`, with the config read from the tensors' shapes.

Files come in transformers' key layout (`vision_model.*` + `visual_projection.weight`), optionally
under a prefix, or in OpenCLIP's (`conv1`, `transformer.resblocks.*`, `proj`), as unCLIP checkpoints
hold it under `embedder.model.visual.`. Nothing is downloaded: shapes give every size; the head
count and activation, which shapes cannot show, come from the known releases (ComfyUI's configs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from nodes.models.modules import assign_weights
from nodes.models.state_dict_files import load_state_dict

# OpenAI CLIP's pixel statistics, used by every CLIP vision release ComfyUI loads for SD models.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# hidden size → (attention heads, activation) of the released towers: ViT-B (OpenAI), ViT-L (OpenAI),
# ViT-H and ViT-bigG (OpenCLIP). Other widths (small test models) get 64-wide heads and quick_gelu.
KNOWN_TOWERS = {768: (12, "quick_gelu"), 1024: (16, "quick_gelu"), 1280: (16, "gelu"), 1664: (16, "gelu")}
OPEN_CLIP_VISUAL_PREFIX = "embedder.model.visual."


class ClipVisionFileError(ValueError):
    """The tensors are not a CLIP vision tower this loader knows."""


@dataclass(frozen=True)
class ClipVisionOutput:
    """What CLIPVisionEncode gives (ComfyUI's CLIP_VISION_OUTPUT): the projected image embedding
    [B, P], the last layer's hidden states [B, T, H] (before the final LayerNorm, as in ComfyUI) and
    the penultimate layer's (IP-Adapter Plus reads those)."""

    image_embeds: torch.Tensor
    last_hidden_state: torch.Tensor
    penultimate_hidden_states: torch.Tensor

    @property
    def nbytes(self) -> int:
        return self.image_embeds.nbytes + self.last_hidden_state.nbytes + self.penultimate_hidden_states.nbytes


def preprocess(images: torch.Tensor, size: int, crop: bool) -> torch.Tensor:
    """IMAGE [B, H, W, C] in 0..1 → normalised pixels [B, 3, size, size], as ComfyUI's clip_preprocess:
    bicubic antialiased resize (shorter side to `size` then a centre crop, or squashed when not
    cropping), quantised to 8 bits, then CLIP's mean and std."""
    pixels = images[..., :3].movedim(-1, 1).float()
    if pixels.shape[2] != size or pixels.shape[3] != size:
        if crop:
            scale = size / min(pixels.shape[2], pixels.shape[3])
            target = (round(scale * pixels.shape[2]), round(scale * pixels.shape[3]))
        else:
            target = (size, size)
        pixels = F.interpolate(pixels, size=target, mode="bicubic", antialias=True)
        top, left = (pixels.shape[2] - size) // 2, (pixels.shape[3] - size) // 2
        pixels = pixels[:, :, top:top + size, left:left + size]
    pixels = torch.clip(255.0 * pixels, 0, 255).round() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def open_clip_visual_to_transformers(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """OpenCLIP's visual tower under `prefix` → CLIPVisionModelWithProjection keys (q/k/v split apart,
    `proj` transposed into `visual_projection`)."""
    fixed = {"conv1.weight": "embeddings.patch_embedding.weight", "class_embedding": "embeddings.class_embedding",
             "positional_embedding": "embeddings.position_embedding.weight", "ln_pre.weight": "pre_layrnorm.weight",
             "ln_pre.bias": "pre_layrnorm.bias", "ln_post.weight": "post_layernorm.weight",
             "ln_post.bias": "post_layernorm.bias"}
    layer = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
             "attn.out_proj": "self_attn.out_proj"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if rest in fixed:
            out["vision_model." + fixed[rest]] = value
        elif rest == "proj":
            out["visual_projection.weight"] = value.t().contiguous()
        elif rest.startswith("transformer.resblocks."):
            index, name = rest.split(".", 3)[2:]
            target = f"vision_model.encoder.layers.{index}."
            if name.startswith("attn.in_proj_"):
                kind = name.rsplit("_", 1)[-1]  # weight or bias
                for part, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[f"{target}self_attn.{part}.{kind}"] = chunk.contiguous()
            else:
                module, kind = name.rsplit(".", 1)
                out[target + layer.get(module, module) + "." + kind] = value
    return out


def _transformers_keys(state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """The tower in transformers' layout, whichever layout (and prefix) the file uses."""
    if any(k.startswith(prefix + "transformer.resblocks.") for k in state_dict):
        return open_clip_visual_to_transformers(state_dict, prefix)
    for candidate in (prefix, "", "clip_vision."):
        found = {k[len(candidate):]: v for k, v in state_dict.items()
                 if k.startswith(candidate + "vision_model.") or k == candidate + "visual_projection.weight"}
        if found:
            return found
    raise ClipVisionFileError("no CLIP vision tower (`vision_model.*` or OpenCLIP `visual.*`) in the tensors")


def vision_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """A CLIPVisionConfig's arguments from the tensors (transformers' layout)."""
    patch = state_dict["vision_model.embeddings.patch_embedding.weight"]
    positions = state_dict["vision_model.embeddings.position_embedding.weight"].shape[0]
    hidden, patch_size = int(patch.shape[0]), int(patch.shape[-1])
    layers = 1 + max(int(k.split(".")[3]) for k in state_dict if k.startswith("vision_model.encoder.layers."))
    heads, act = KNOWN_TOWERS.get(hidden, (max(1, hidden // 64), "quick_gelu"))
    projection = state_dict.get("visual_projection.weight")
    return dict(hidden_size=hidden, patch_size=patch_size, num_channels=int(patch.shape[1]),
                image_size=patch_size * math.isqrt(positions - 1), num_hidden_layers=layers,
                intermediate_size=int(state_dict["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]),
                num_attention_heads=heads, hidden_act=act,
                projection_dim=int(projection.shape[0]) if projection is not None else hidden)


class ClipVisionModel:
    """A loaded CLIP vision tower: `encode(images, crop)` is all its users (unCLIP, style models,
    IP-Adapter) need."""

    def __init__(self, model: Any, source: str = "") -> None:
        self.model = model
        self.source = source

    @property
    def image_size(self) -> int:
        return int(self.model.config.image_size)

    @property
    def estimated_nbytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    @torch.inference_mode()
    def encode(self, images: torch.Tensor, crop: bool = True) -> ClipVisionOutput:
        param = next(self.model.parameters())
        pixels = preprocess(images.cpu(), self.image_size, crop).to(param.device, param.dtype)
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        return ClipVisionOutput(out.image_embeds.float().cpu(), out.last_hidden_state.float().cpu(),
                                out.hidden_states[-2].float().cpu())


def build_clip_vision(state_dict: Mapping[str, torch.Tensor], prefix: str = "", dtype: torch.dtype | None = None,
                      device: str | torch.device = "cpu", source: str = "") -> ClipVisionModel:
    """The tower under `prefix` (any layout), built and given its weights."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    weights = _transformers_keys(state_dict, prefix)
    try:
        config = vision_config(weights)
    except KeyError as exc:
        raise ClipVisionFileError(f"{source or 'CLIP vision'}: missing tensor {exc}") from None
    with torch.device("meta"):
        module = CLIPVisionModelWithProjection(CLIPVisionConfig(**config))
    module = assign_weights(module, weights, dtype=dtype, device=device, component=source or "clip_vision")
    return ClipVisionModel(module.eval(), source)


def load_clip_vision(path: Path, dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                     name: str = "") -> ClipVisionModel:
    """A `clip_vision` model file."""
    try:
        return build_clip_vision(load_state_dict(path), dtype=dtype, device=device, source=name or path.name)
    except ClipVisionFileError as exc:
        raise ClipVisionFileError(f"{path}: {exc}") from None
