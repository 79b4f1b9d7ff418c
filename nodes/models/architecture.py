"""Model configs read off the tensor shapes of a single-file (LDM layout) checkpoint.

A checkpoint's shapes fix almost every architectural number: channels per level, blocks per level,
which levels attend, transformer depth, text encoder width and depth. What shapes cannot show is
how a width splits into attention heads; there we follow the families' own rule (as ComfyUI's
model detection does): SD1.x UNets use 8 heads per level, SD2.x and SDXL UNets and all CLIP text
encoders use 64 channels per head. Everything else starts from the family's shipped config, so a
full-size checkpoint yields exactly the shipped config, and a smaller one (a test model, a
pruned variant) yields a config that fits its tensors.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Mapping, Sequence

from nodes.models.family import UNET_PREFIX, CheckpointFamily

Shape = Sequence[int]
HEAD_CHANNELS = 64
SD1_UNET_HEADS = 8


def _indices(shapes: Mapping[str, Shape], pattern: str) -> list[int]:
    """Sorted distinct integers captured by `pattern`'s group 1 across the keys."""
    regex = re.compile(pattern)
    found = {int(m.group(1)) for k in shapes if (m := regex.match(k))}
    return sorted(found)


def _count(shapes: Mapping[str, Shape], pattern: str) -> int:
    found = _indices(shapes, pattern)
    return max(found) + 1 if found else 0


def infer_unet_config(shapes: Mapping[str, Shape], family: CheckpointFamily,
                      base: dict[str, Any], pooled_dim: int | None = None) -> dict[str, Any]:
    """A `UNet2DConditionModel` config for the UNet tensors under `model.diffusion_model.`.

    `pooled_dim` (SDXL: OpenCLIP bigG's projection width) lets the size/crop embedding width be
    derived from the label embedding's input width (pooled + `family.size_ids` embeddings).
    """
    p = re.escape(UNET_PREFIX)
    conv_in = shapes[UNET_PREFIX + "input_blocks.0.0.weight"]
    num_inputs = _count(shapes, p + r"input_blocks\.(\d+)\.")
    downsamplers = [i for i in range(num_inputs) if UNET_PREFIX + f"input_blocks.{i}.0.op.weight" in shapes]
    levels = len(downsamplers) + 1
    layers = (num_inputs - 1 - len(downsamplers)) // levels
    channels, attends, depths = [], [], []
    for level in range(levels):
        first = 1 + level * (layers + 1)
        channels.append(int(shapes[UNET_PREFIX + f"input_blocks.{first}.0.out_layers.3.weight"][0]))
        depth = _count(shapes, p + rf"input_blocks\.{first}\.1\.transformer_blocks\.(\d+)\.")
        attends.append(depth > 0)
        depths.append(max(depth, 1))
    mid_depth = _count(shapes, p + r"middle_block\.1\.transformer_blocks\.(\d+)\.")
    attn_key = next((k for k in shapes if k.startswith(UNET_PREFIX) and k.endswith("attn2.to_k.weight")), None)
    proj_in = next((k for k in shapes if k.startswith(UNET_PREFIX) and k.endswith(".proj_in.weight")), None)

    config = copy.deepcopy(base)
    config.update(
        in_channels=int(conv_in[1]),
        out_channels=int(shapes[UNET_PREFIX + "out.2.weight"][0]),
        block_out_channels=channels,
        layers_per_block=layers,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attends],
        up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attends)],
    )
    if attn_key is not None:
        config["cross_attention_dim"] = int(shapes[attn_key][1])
    if proj_in is not None:
        config["use_linear_projection"] = len(shapes[proj_in]) == 2
    if family.config_dir == "sd15":
        config["attention_head_dim"] = SD1_UNET_HEADS
    else:
        # diffusers' `attention_head_dim` holds the number of heads for these models (a known misnomer).
        config["attention_head_dim"] = [max(1, c // HEAD_CHANNELS) for c in channels]
    if mid_depth and not attends[-1]:
        depths[-1] = mid_depth  # the middle block reads the last level's depth (the SDXL refiner's case)
    if mid_depth and mid_depth != depths[-1]:
        raise ValueError(f"UNet middle block has {mid_depth} transformer layers but its last level "
                         f"has {depths[-1]}; diffusers cannot represent that")
    if "transformer_layers_per_block" in base or set(depths) != {1}:
        config["transformer_layers_per_block"] = depths
    label = UNET_PREFIX + "label_emb.0.0.weight"
    if label in shapes:
        adm = int(shapes[label][1])
        config["projection_class_embeddings_input_dim"] = adm
        ids = family.size_ids or 6
        if pooled_dim is not None and (adm - pooled_dim) % ids == 0:
            config["addition_time_embed_dim"] = (adm - pooled_dim) // ids
    return config


def infer_vae_config(shapes: Mapping[str, Shape], prefix: str, base: dict[str, Any]) -> dict[str, Any]:
    """An `AutoencoderKL` config for the VAE tensors under `prefix` (`first_stage_model.`)."""
    p = re.escape(prefix)
    levels = _count(shapes, p + r"encoder\.down\.(\d+)\.")
    channels = [int(shapes[prefix + f"encoder.down.{i}.block.0.conv1.weight"][0]) for i in range(levels)]
    config = copy.deepcopy(base)
    config.update(
        in_channels=int(shapes[prefix + "encoder.conv_in.weight"][1]),
        out_channels=int(shapes[prefix + "decoder.conv_out.weight"][0]),
        latent_channels=int(shapes[prefix + "decoder.conv_in.weight"][1]),
        block_out_channels=channels,
        layers_per_block=_count(shapes, p + r"encoder\.down\.0\.block\.(\d+)\."),
        down_block_types=["DownEncoderBlock2D"] * levels,
        up_block_types=["UpDecoderBlock2D"] * levels,
    )
    return config


def infer_clip_config(shapes: Mapping[str, Shape], prefix: str, base: dict[str, Any],
                      open_clip: bool, drop_last_layer: bool = False) -> dict[str, Any]:
    """A `CLIPTextConfig` dict for a text encoder under `prefix`, in OpenAI or OpenCLIP layout.

    `drop_last_layer` (SD2.x) leaves out the final block, which the model never uses: it
    conditions on the penultimate layer, and diffusers' SD2 configs omit that block too.
    """
    p = re.escape(prefix)
    if open_clip:
        token = shapes[prefix + "token_embedding.weight"]
        positions = shapes[prefix + "positional_embedding"]
        layers = _count(shapes, p + r"transformer\.resblocks\.(\d+)\.")
        mlp = shapes[prefix + "transformer.resblocks.0.mlp.c_fc.weight"]
        projection = shapes.get(prefix + "text_projection")
    else:
        t = prefix + "text_model."
        token = shapes[t + "embeddings.token_embedding.weight"]
        positions = shapes[t + "embeddings.position_embedding.weight"]
        layers = _count(shapes, re.escape(t) + r"encoder\.layers\.(\d+)\.")
        mlp = shapes[t + "encoder.layers.0.mlp.fc1.weight"]
        projection = None
    hidden = int(token[1])
    config = copy.deepcopy(base)
    config.update(
        vocab_size=int(token[0]),
        hidden_size=hidden,
        max_position_embeddings=int(positions[0]),
        num_hidden_layers=layers - 1 if drop_last_layer else layers,
        intermediate_size=int(mlp[0]),
        num_attention_heads=max(1, hidden // HEAD_CHANNELS),
    )
    if projection is not None and "CLIPTextModelWithProjection" in base.get("architectures", []):
        config["projection_dim"] = int(projection[1])
    return config
