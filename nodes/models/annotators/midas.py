"""MiDaS v3 DPT-hybrid (`dpt_hybrid-midas-501f0c75.pt`, the pack's MiDaS depth model) on transformers'
`DPTForDepthEstimation` with its BiT-ResNet hybrid backbone.

The original file's keys (timm's ViT-hybrid under `pretrained.model`, MiDaS's `scratch` neck and head) are renamed
by one table of templates that reads both ways; timm's fused `qkv` becomes query, key and value. transformers'
forward only takes square 384×384 inputs for the hybrid, so `predict_depth` calls its parts for any size that is a
multiple of 32, as MiDaS does (position embeddings resized bilinearly).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from nodes.models.annotators.key_templates import KeyTemplates
from nodes.models.state_dict_files import load_state_dict

MIDAS_FILE = "dpt_hybrid-midas-501f0c75.pt"
PATCH = 16
HIDDEN = 768
_QKV = ("query", "key", "value")
# Keys of the original file the depth model has no use for: timm's classifier head.
_UNUSED = re.compile(r"^pretrained\.model\.head\.")


def midas_config() -> Any:
    """MiDaS DPT-hybrid: ViT-B/16 at 384 on BiT-R50 (3 stages), readout projected, neck [256, 512, 768, 768];
    timm's LayerNorm eps 1e-6."""
    from transformers import DPTConfig

    return DPTConfig(is_hybrid=True, hidden_size=HIDDEN, reassemble_factors=[1, 1, 1, 0.5],
                     neck_hidden_sizes=[256, 512, 768, 768], readout_type="project", backbone_out_indices=[2, 5, 8, 11],
                     use_batch_norm_in_fusion_residual=False, layer_norm_eps=1e-6)


def _templates() -> list[tuple[str, str]]:
    """(original prefix, transformers prefix) pairs; `{i}` and `{j}` stand for the same number on both sides."""
    backbone = "pretrained.model.patch_embed.backbone"
    ours_backbone = "dpt.embeddings.backbone.bit"
    pairs = [
        ("pretrained.model.cls_token", "dpt.embeddings.cls_token"),
        ("pretrained.model.pos_embed", "dpt.embeddings.position_embeddings"),
        (f"{backbone}.stem.conv", f"{ours_backbone}.embedder.convolution"),
        (f"{backbone}.stem.norm", f"{ours_backbone}.embedder.norm"),
        (f"{backbone}.stages.{{i}}.blocks.{{j}}", f"{ours_backbone}.encoder.stages.{{i}}.layers.{{j}}"),
        ("pretrained.model.patch_embed.proj", "dpt.embeddings.projection"),
        ("pretrained.model.blocks.{i}.norm1", "dpt.encoder.layer.{i}.layernorm_before"),
        ("pretrained.model.blocks.{i}.norm2", "dpt.encoder.layer.{i}.layernorm_after"),
        ("pretrained.model.blocks.{i}.attn.proj", "dpt.encoder.layer.{i}.attention.output.dense"),
        ("pretrained.model.blocks.{i}.mlp.fc1", "dpt.encoder.layer.{i}.intermediate.dense"),
        ("pretrained.model.blocks.{i}.mlp.fc2", "dpt.encoder.layer.{i}.output.dense"),
        ("pretrained.model.norm", "dpt.layernorm"),
        ("pretrained.act_postprocess4.4", "neck.reassemble_stage.layers.3.resize"),
        ("scratch.output_conv", "head.head"),
    ]
    for stage in (3, 4):   # the hybrid's stages 1 and 2 are the ResNet's own feature maps, without readout
        reassemble = "neck.reassemble_stage"
        pairs += [(f"pretrained.act_postprocess{stage}.0.project.0", f"{reassemble}.readout_projects.{stage - 1}.0"),
                  (f"pretrained.act_postprocess{stage}.3", f"{reassemble}.layers.{stage - 1}.projection")]
    for n in (1, 2, 3, 4):
        # MiDaS's refinenet4 fuses the deepest features first: transformers counts the fusion layers from there
        fusion = f"neck.fusion_stage.layers.{4 - n}"
        pairs += [(f"scratch.layer{n}_rn", f"neck.convs.{n - 1}"),
                  (f"scratch.refinenet{n}.out_conv", f"{fusion}.projection")]
        pairs += [(f"scratch.refinenet{n}.resConfUnit{unit}.conv{conv}",
                   f"{fusion}.residual_layer{unit}.convolution{conv}") for unit in (1, 2) for conv in (1, 2)]
    return pairs


_TEMPLATES = KeyTemplates(_templates())


def _rename(key: str, forward: bool) -> str | None:
    return _TEMPLATES.to_ours(key) if forward else _TEMPLATES.to_original(key)


def to_transformers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original MiDaS DPT-hybrid state dict under transformers' names; a key no rule knows is an error."""
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state_dict.items():
        qkv = re.match(r"^pretrained\.model\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", key)
        if qkv:
            for name, part in zip(_QKV, tensor.chunk(3, dim=0)):
                converted[f"dpt.encoder.layer.{qkv[1]}.attention.attention.{name}.{qkv[2]}"] = part
        elif (renamed := _rename(key, forward=True)) is not None:
            converted[renamed] = tensor
        elif not _UNUSED.match(key):
            unknown.append(key)
    if unknown:
        raise ValueError(f"not a MiDaS DPT-hybrid file: unknown keys {unknown[:5]}")
    return converted


def to_original(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `to_transformers`: transformers' DPT-hybrid state dict under the original file's names."""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        split = re.match(r"^dpt\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$", key)
        if split:
            if split[2] == "query":
                prefix = f"dpt.encoder.layer.{split[1]}.attention.attention"
                converted[f"pretrained.model.blocks.{split[1]}.attn.qkv.{split[3]}"] = torch.cat(
                    [state_dict[f"{prefix}.{name}.{split[3]}"] for name in _QKV])
            continue
        renamed = _rename(key, forward=False)
        if renamed is None:
            raise ValueError(f"no original name for {key}")
        converted[renamed] = tensor
    return converted


def build_midas() -> Any:
    """The DPT-hybrid architecture with transformers' initial weights."""
    from transformers import DPTForDepthEstimation

    return DPTForDepthEstimation(midas_config()).eval()


def load_midas(path: Path, device: torch.device) -> Any:
    """The depth model with the weights of an original `dpt_hybrid-midas-*.pt` file (strict; built without
    initial weights, the model has no buffers)."""
    from transformers import DPTForDepthEstimation

    with torch.device("meta"):
        model: Any = DPTForDepthEstimation(midas_config())
    model.load_state_dict({key: value.float() for key, value in to_transformers(load_state_dict(path)).items()},
                          assign=True)
    return model.to(device).eval()


def predict_depth(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """Relative inverse depth [B, H, W] (larger is nearer) of `pixels` [B, 3, H, W] in -1..1, H and W multiples
    of 32; the hooks MiDaS reads: the ResNet's first two stages and ViT blocks 9 and 12, before the final norm."""
    height, width = pixels.shape[2], pixels.shape[3]
    embedded = model.dpt.embeddings(pixels, interpolate_pos_encoding=True)
    features = list(embedded.intermediate_activations)
    hidden = embedded.last_hidden_states
    taps = set(model.config.backbone_out_indices[2:])
    for index, layer in enumerate(model.dpt.encoder.layer):
        hidden = layer(hidden)
        if index in taps:
            features.append(hidden)
    return model.head(model.neck(features, height // PATCH, width // PATCH))
