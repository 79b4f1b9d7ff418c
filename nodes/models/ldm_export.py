"""Diffusers/transformers state dicts → a single-file checkpoint in the original LDM key layout.

The exact inverse of `ldm_convert` (diffusers' single-file conversion): the same fixed table of
renames read backwards, plus re-fusing OpenCLIP's q/k/v projections and restoring the VAE's 1×1
convolutions. It lets us write checkpoints other tools (ComfyUI, A1111) read, and build test
checkpoints from small random diffusers models.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from nodes.models.family import SD2_OPEN_CLIP_PREFIX, UNET_PREFIX, V_PRED_KEY, VAE_PREFIX, CheckpointFamily

_UNET_FIXED = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc",
                    "mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}


def _rename(rest: str, table: Mapping[str, str]) -> str:
    """`rest` (e.g. `norm1.weight`) with its leading module name replaced through `table`."""
    for old, new in table.items():
        if rest.startswith(old + "."):
            return new + rest[len(old):]
    return rest


def unet_to_ldm(state_dict: Mapping[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """UNet2DConditionModel keys → `model.diffusion_model.*` keys."""
    out: dict[str, torch.Tensor] = {}
    per_level = layers_per_block + 1
    for key, value in state_dict.items():
        parts = key.split(".")
        fixed = next((new + key[len(old):] for old, new in _UNET_FIXED.items() if key.startswith(old)), None)
        if fixed is not None:
            ldm = fixed
        elif parts[0] == "down_blocks":
            level, kind = int(parts[1]), parts[2]
            if kind == "downsamplers":
                ldm = f"input_blocks.{1 + level * per_level + layers_per_block}.0.op." + ".".join(parts[5:])
            else:
                index = 1 + level * per_level + int(parts[3])
                rest = ".".join(parts[4:])
                ldm = (f"input_blocks.{index}.0." + _rename(rest, _UNET_RESNET) if kind == "resnets"
                       else f"input_blocks.{index}.1." + rest)
        elif parts[0] == "mid_block":
            kind, i, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            ldm = (f"middle_block.{2 * i}." + _rename(rest, _UNET_RESNET) if kind == "resnets"
                   else "middle_block.1." + rest)
        elif parts[0] == "up_blocks":
            level, kind = int(parts[1]), parts[2]
            if kind == "upsamplers":
                index = level * per_level + layers_per_block
                has_attention = any(k.startswith(f"up_blocks.{level}.attentions.") for k in state_dict)
                ldm = f"output_blocks.{index}.{2 if has_attention else 1}.conv." + ".".join(parts[5:])
            else:
                index = level * per_level + int(parts[3])
                rest = ".".join(parts[4:])
                ldm = (f"output_blocks.{index}.0." + _rename(rest, _UNET_RESNET) if kind == "resnets"
                       else f"output_blocks.{index}.1." + rest)
        else:
            raise KeyError(f"no LDM name for UNet key {key!r}")
        out[UNET_PREFIX + ldm] = value
    return out


def vae_to_ldm(state_dict: Mapping[str, torch.Tensor], num_levels: int) -> dict[str, torch.Tensor]:
    """AutoencoderKL keys → `first_stage_model.*` keys (decoder levels run in reverse in LDM)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        coder = parts[0]
        if coder in ("quant_conv", "post_quant_conv"):
            ldm = key
        elif parts[1] in ("conv_norm_out",):
            ldm = f"{coder}.norm_out." + ".".join(parts[2:])
        elif parts[1] in ("conv_in", "conv_out"):
            ldm = key
        elif parts[1] in ("down_blocks", "up_blocks"):
            level = int(parts[2]) if coder == "encoder" else num_levels - 1 - int(parts[2])
            stage = "down" if coder == "encoder" else "up"
            if parts[3] in ("downsamplers", "upsamplers"):
                ldm = f"{coder}.{stage}.{level}.{'downsample' if coder == 'encoder' else 'upsample'}.conv." + parts[-1]
            else:
                ldm = f"{coder}.{stage}.{level}.block.{parts[4]}." + _rename(".".join(parts[5:]), _VAE_RESNET)
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                ldm = f"{coder}.mid.block_{int(parts[3]) + 1}." + ".".join(parts[4:])
            else:
                ldm = f"{coder}.mid.attn_1." + _rename(".".join(parts[4:]), _VAE_ATTENTION)
                if value.ndim == 2:  # LDM keeps these as 1×1 convolutions
                    value = value[:, :, None, None]
        else:
            raise KeyError(f"no LDM name for VAE key {key!r}")
        out[VAE_PREFIX + ldm] = value
    return out


def clip_to_ldm(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """OpenAI-layout CLIP keys (flat or under `text_model.`) → `<prefix>text_model.*`."""
    return {prefix + ("" if k.startswith("text_model.") else "text_model.") + k: v for k, v in state_dict.items()}


def open_clip_to_ldm(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """CLIP text keys → OpenCLIP's layout: fused q/k/v, `resblocks`, and `text_projection` as a
    matrix applied on the right (the transpose of the Linear weight)."""
    sd = {k.removeprefix("text_model."): v for k, v in state_dict.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out[prefix + "ln_final." + key.split(".")[-1]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif key.startswith("encoder.layers."):
            parts = key.split(".")
            layer, rest = parts[2], ".".join(parts[3:])
            base = f"{prefix}transformer.resblocks.{layer}."
            if rest.startswith(("self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj.")):
                if rest.startswith("self_attn.q_proj."):
                    kind = rest.split(".")[-1]
                    fused = torch.cat([sd[f"encoder.layers.{layer}.self_attn.{n}_proj.{kind}"] for n in "qkv"])
                    out[base + f"attn.in_proj_{kind}"] = fused
            else:
                out[base + _rename(rest, _OPEN_CLIP_LAYER)] = value
        else:
            raise KeyError(f"no OpenCLIP name for text encoder key {key!r}")
    return out


def _identity_block(state_dict: Mapping[str, torch.Tensor], prefix: str, layer: int) -> dict[str, torch.Tensor]:
    """A residual block that changes nothing: zero output projections, so the final hidden state
    equals the previous one. Used for SD2.x's unused last block (see `architecture`)."""
    template = {k: v for k, v in state_dict.items() if k.startswith(f"{prefix}transformer.resblocks.0.")}
    return {k.replace(".resblocks.0.", f".resblocks.{layer}."):
            torch.zeros_like(v) if ("c_proj" in k or "out_proj" in k) else v.clone()
            for k, v in template.items()}


def export_ldm_checkpoint(family: CheckpointFamily, unet: Mapping[str, torch.Tensor],
                          unet_config: Mapping[str, Any], vae: Mapping[str, torch.Tensor],
                          vae_config: Mapping[str, Any],
                          text_encoders: list[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One LDM-layout state dict for the whole pipeline, as a single-file checkpoint holds it.

    SD2.x gets its text encoder's missing final block back as an identity block and an identity
    `text_projection`, the shapes every SD2.x file has; v-prediction models get a `v_pred` marker.
    """
    out = unet_to_ldm(unet, unet_config["layers_per_block"])
    out.update(vae_to_ldm(vae, len(vae_config["block_out_channels"])))
    for prefix, encoder in zip(family.text_encoder_prefixes, text_encoders):
        if prefix.endswith(".model."):
            part = open_clip_to_ldm(encoder, prefix)
            if prefix == SD2_OPEN_CLIP_PREFIX:
                layers = 1 + max(int(k.split(".")[4]) for k in part if ".resblocks." in k)
                part.update(_identity_block(part, prefix, layers))
                hidden = part[prefix + "token_embedding.weight"].shape[1]
                part[prefix + "text_projection"] = torch.eye(hidden, dtype=part[prefix + "ln_final.weight"].dtype,
                                                             device=part[prefix + "ln_final.weight"].device)
            out.update(part)
        else:
            out.update(clip_to_ldm(encoder, prefix))
    if family.prediction_type == "v_prediction":
        out[V_PRED_KEY] = torch.tensor([])
    return out
