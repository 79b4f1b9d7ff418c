"""ZoeDepth-N (`ZoeD_M12_N.pt`, the pack's Zoe depth model) on transformers' `ZoeDepthForDepthEstimation` with
its BEiT backbone (MiDaS v3.1 BEiT-L/384).

The original file's keys (ZoeDepth's `core.core` MiDaS with timm's BEiT, its metric bins head) are renamed by one
table of templates that reads both ways, after transformers' conversion script (convert_zoedepth_to_hf.py); BEiT's
fused `qkv` with its `q_bias` and `v_bias` becomes query, key and value. The architecture's sizes are read from the
file's shapes, so the real file and a tiny one in the same layout load alike. `infer_depth` repeats the steps
ZoeDepth's `infer` takes around the network (reflect padding, a horizontal flip averaged in, MiDaS's resize).
This is the pack's ZoeDetector as it ran ZoeD_M12_N.pt until 2025; its newest releases call transformers' pipeline
on Intel/zoedepth-nyu-kitti from the Hugging Face cache instead (the same percentiles, of its 8-bit depth image).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nodes.models.annotators.key_templates import KeyTemplates
from nodes.models.state_dict_files import load_state_dict

ZOE_FILE = "ZoeD_M12_N.pt"
_CORE = "core.core.pretrained"
_SCRATCH = "core.core.scratch"
_QKV_BIASES = {"q_bias": "q_proj", "v_bias": "v_proj"}
# Buffers and the classifier the depth model does not use: BEiT's relative position index (rebuilt from the
# window size) and zero key bias (which some timm versions save), timm's pooled norm and head, the log-binomial's
# constant tables.
_UNUSED = re.compile(r"(\.relative_position_index|\.attn\.k_bias|\.k_idx|\.K_minus_1)$"
                     r"|^core\.core\.pretrained\.model\.(fc_norm|head)\.")
# ZoeD_N: trained on NYU depth, bins between 1 mm and 10 m, MiDaS's input at 384×512 keeping the aspect ratio.
_MIN_DEPTH, _MAX_DEPTH = 1e-3, 10.0
NET_HEIGHT, NET_WIDTH = 384, 512


def _templates() -> list[tuple[str, str]]:
    """(original prefix, transformers prefix) pairs; `{i}` and `{j}` stand for the same number on both sides."""
    block, layer = f"{_CORE}.model.blocks.{{i}}", "backbone.beit.layers.{i}"
    pairs = [
        (f"{_CORE}.model.cls_token", "backbone.beit.embeddings.cls_token"),
        (f"{_CORE}.model.patch_embed.proj", "backbone.beit.embeddings.patch_embeddings.projection"),
        (f"{block}.gamma_1", f"{layer}.lambda_1"),
        (f"{block}.gamma_2", f"{layer}.lambda_2"),
        (f"{block}.norm1", f"{layer}.layernorm_before"),
        (f"{block}.norm2", f"{layer}.layernorm_after"),
        (f"{block}.attn.proj", f"{layer}.attention.o_proj"),
        (f"{block}.attn.relative_position_bias_table", f"{layer}.relative_position_bias.relative_position_bias_table"),
        (f"{block}.mlp", f"{layer}.mlp"),
        (f"{_CORE}.act_postprocess{{i}}.0.project", "neck.reassemble_stage.readout_projects.{i}"),
        (f"{_CORE}.act_postprocess{{i}}.3", "neck.reassemble_stage.layers.{i}.projection"),
        (f"{_CORE}.act_postprocess{{i}}.4", "neck.reassemble_stage.layers.{i}.resize"),
        (f"{_SCRATCH}.layer{{i}}_rn", "neck.convs.{i}"),
        (f"{_SCRATCH}.output_conv.0", "relative_head.conv1"),
        (f"{_SCRATCH}.output_conv.2", "relative_head.conv2"),
        (f"{_SCRATCH}.output_conv.4", "relative_head.conv3"),
        ("conv2", "metric_head.conv2"),
        ("conditional_log_binomial.mlp", "metric_head.conditional_log_binomial.mlp"),
    ]
    for name in ("seed_bin_regressor", "seed_projector", "projectors.{i}", "attractors.{i}"):
        pairs += [(f"{name}._net.0", f"metric_head.{name}.conv1"), (f"{name}._net.2", f"metric_head.{name}.conv2")]
    for n in (1, 2, 3, 4):
        # MiDaS's refinenet4 fuses the deepest features first: transformers counts the fusion layers from there
        fusion = f"neck.fusion_stage.layers.{4 - n}"
        pairs.append((f"{_SCRATCH}.refinenet{n}.out_conv", f"{fusion}.projection"))
        pairs += [(f"{_SCRATCH}.refinenet{n}.resConfUnit{unit}.conv{conv}",
                   f"{fusion}.residual_layer{unit}.convolution{conv}") for unit in (1, 2) for conv in (1, 2)]
    return pairs


# The original counts act_postprocess and layer_rn from 1, transformers from 0.
_TEMPLATES = KeyTemplates(_templates(), one_based=("act_postprocess", "_rn"))


def to_transformers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original ZoeDepth-N state dict under transformers' names; a key no rule knows is an error."""
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state_dict.items():
        attention = re.match(rf"^{re.escape(_CORE)}\.model\.blocks\.(\d+)\.attn\.(qkv\.weight|q_bias|v_bias)$", key)
        if attention:
            prefix = f"backbone.beit.layers.{attention[1]}.attention"
            if attention[2] == "qkv.weight":
                for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                    converted[f"{prefix}.{name}.weight"] = part
            else:
                converted[f"{prefix}.{_QKV_BIASES[attention[2]]}.bias"] = tensor
        elif (renamed := _TEMPLATES.to_ours(key)) is not None:
            converted[renamed] = tensor
        elif not _UNUSED.search(key):
            unknown.append(key)
    if unknown:
        raise ValueError(f"not a ZoeDepth-N file: unknown keys {unknown[:5]}")
    return converted


def to_original(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `to_transformers`: transformers' ZoeDepth state dict under the original file's names."""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        split = re.match(r"^backbone\.beit\.layers\.(\d+)\.attention\.(q|k|v)_proj\.(weight|bias)$", key)
        if split:
            block = f"{_CORE}.model.blocks.{split[1]}.attn"
            if split[3] == "bias":
                converted[f"{block}.{split[2]}_bias"] = tensor
            elif split[2] == "q":
                prefix = f"backbone.beit.layers.{split[1]}.attention"
                converted[f"{block}.qkv.weight"] = torch.cat(
                    [state_dict[f"{prefix}.{name}_proj.weight"] for name in "qkv"])
            continue
        renamed = _TEMPLATES.to_original(key)
        if renamed is None:
            raise ValueError(f"no original name for {key}")
        converted[renamed] = tensor
    return converted


def zoe_config(state_dict: dict[str, torch.Tensor]) -> Any:
    """ZoeDepth-N's config with the sizes the original file's shapes give (BEiT-L/384 for the real file): MiDaS
    taps the BEiT after each quarter of its blocks; timm's LayerNorm eps 1e-6; bins of the NYU head, softplus."""
    from transformers import BeitConfig, ZoeDepthConfig

    def shape(key: str) -> torch.Size:
        return state_dict[key].shape

    blocks = sum(1 for key in state_dict if re.fullmatch(rf"{re.escape(_CORE)}\.model\.blocks\.\d+\.attn\.qkv\.weight",
                                                         key))
    patch = shape(f"{_CORE}.model.patch_embed.proj.weight")
    table = shape(f"{_CORE}.model.blocks.0.attn.relative_position_bias_table")
    window = (math.isqrt(table[0] - 3) + 1) // 2   # the table holds (2w - 1)² relative offsets and 3 for the cls token
    backbone: dict[str, Any] = dict(
        image_size=window * patch[-1], patch_size=patch[-1], hidden_size=patch[0], num_hidden_layers=blocks,
        num_attention_heads=table[1], intermediate_size=shape(f"{_CORE}.model.blocks.0.mlp.fc1.weight")[0],
        use_relative_position_bias=True, reshape_hidden_states=False, layer_norm_eps=1e-6,
        out_features=[f"stage{blocks * quarter // 4}" for quarter in (1, 2, 3, 4)])
    attractors = sorted(key for key in state_dict if re.fullmatch(r"attractors\.\d+\._net\.2\.weight", key))
    return ZoeDepthConfig(
        backbone_config=BeitConfig(**backbone),
        neck_hidden_sizes=[shape(f"{_CORE}.act_postprocess{n}.3.weight")[0] for n in (1, 2, 3, 4)],
        fusion_hidden_size=shape(f"{_SCRATCH}.layer1_rn.weight")[0],
        num_relative_features=shape(f"{_SCRATCH}.output_conv.2.weight")[0],
        bottleneck_features=shape("conv2.weight")[0],
        bin_embedding_dim=shape("seed_projector._net.2.weight")[0],
        num_attractors=[shape(key)[0] for key in attractors], bin_centers_type="softplus",
        bin_configurations=[{"n_bins": shape("seed_bin_regressor._net.2.weight")[0], "min_depth": _MIN_DEPTH,
                             "max_depth": _MAX_DEPTH}])


def load_zoe(path: Path, device: torch.device) -> Any:
    """The depth model with the weights of an original `ZoeD_M12_N.pt` file (its `model` entry; strict)."""
    from transformers import ZoeDepthForDepthEstimation

    original = load_state_dict(path)
    state = {key: value.float() for key, value in to_transformers(original).items()}
    with torch.device("meta"):
        model: Any = ZoeDepthForDepthEstimation(zoe_config(original))
    model.load_state_dict(state, assign=True, strict=True)
    _rebuild_buffers(model)
    return model.to(device).eval()


def _rebuild_buffers(model: Any) -> None:
    """The log-binomial's constant tables (not saved, so still on the meta device), as the model's init fills them."""
    from transformers.models.zoedepth.modeling_zoedepth import LogBinomialSoftmax

    for module in model.modules():
        if isinstance(module, LogBinomialSoftmax):
            module.k_idx = torch.arange(0, module.k).view(1, -1, 1, 1)
            module.k_minus_1 = torch.tensor([module.k - 1]).view(1, -1, 1, 1)
    left = [name for name, buffer in model.named_buffers() if buffer.is_meta]
    if left:
        raise ValueError(f"ZoeDepth buffers without values: {left[:3]}")


def midas_size(height: int, width: int) -> tuple[int, int]:
    """MiDaS's resize for ZoeDepth ("minimal", aspect ratio kept, multiples of 32 to the nearest): the side whose
    scale to 384×512 is closer to 1 sets the scale of both."""
    scale_h, scale_w = NET_HEIGHT / height, NET_WIDTH / width
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return int(np.round(scale * height / 32) * 32), int(np.round(scale * width / 32) * 32)


def _metric_depth(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """ZoeDepth's forward on 0..1 `pixels`: resized for MiDaS (bilinear, corners aligned), to -1..1, the network's
    metric depth brought back to the input's size (bicubic) as [B, 1, H, W]."""
    height, width = midas_size(pixels.shape[2], pixels.shape[3])
    net_input = F.interpolate(pixels, (height, width), mode="bilinear", align_corners=True) * 2.0 - 1.0
    depth = model(pixel_values=net_input).predicted_depth.unsqueeze(1)
    if depth.shape[-2:] != pixels.shape[-2:]:
        depth = F.interpolate(depth, size=pixels.shape[-2:], mode="bicubic", align_corners=False)
    return depth


def _padded_depth(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """ZoeDepth's padding augmentation: reflect-pad by 3·√(side/2), predict, crop the padding off."""
    pad_h, pad_w = int(np.sqrt(pixels.shape[2] / 2) * 3), int(np.sqrt(pixels.shape[3] / 2) * 3)
    padding = [pad_w, pad_w] + ([pad_h, pad_h] if pad_h > 0 else [])
    depth = _metric_depth(model, F.pad(pixels, padding, mode="reflect"))
    if pad_h > 0:
        depth = depth[:, :, pad_h:-pad_h, :]
    if pad_w > 0:
        depth = depth[:, :, :, pad_w:-pad_w]
    return depth


def infer_depth(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """Metric depth [B, 1, H, W] of `pixels` [B, 3, H, W] in 0..1, as ZoeDepth's `infer` gives it: the padded
    prediction averaged with that of the mirrored image, mirrored back."""
    depth = _padded_depth(model, pixels)
    mirrored = _padded_depth(model, torch.flip(pixels, dims=[3]))
    return (depth + torch.flip(mirrored, dims=[3])) / 2


def zoe_depth_map(model: Any, x: torch.Tensor) -> torch.Tensor:
    """The pack's ZoeDetector on one padded image of uint8 values [1, 3, H, W]: the depth between its 2nd and 85th
    percentiles mapped to 1..0 (near is white), truncated to uint8, as three channels."""
    weights = next(model.parameters())
    with torch.no_grad():
        depth = infer_depth(model, (x / 255.0).to(weights.device, weights.dtype))[0, 0].float().cpu().numpy()
    near, far = np.percentile(depth, 2), np.percentile(depth, 85)
    depth -= near   # in place, in float32, as the pack computes it
    depth /= far - near
    depth = 1.0 - depth
    levels = torch.from_numpy((depth * 255.0).clip(0, 255).astype(np.uint8)).float()
    return levels[None, None].repeat(1, 3, 1, 1)
