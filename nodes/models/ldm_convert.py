"""Single-file (LDM layout) state dicts → one diffusers/transformers state dict per component.

The key renaming is diffusers' own (`diffusers.loaders.single_file_utils`), which is maintained
against every real checkpoint in circulation; only its pure conversion functions are used, never
the parts that fetch configs from a hub. What is added here: choosing the component configs
(from the tensors' shapes), and the few adjustments the converters leave to their callers.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

from nodes.models.architecture import infer_clip_config, infer_unet_config, infer_vae_config
from nodes.models.family import (
    SD1_CLIP_PREFIX,
    SD2_OPEN_CLIP_PREFIX,
    SDXL_OPEN_CLIP_PREFIX,
    SDXL_REFINER_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    CheckpointFamily,
)
from nodes.models.shipped_configs import FamilyConfigs, shipped_configs, text_encoder_names

OPEN_CLIP_PREFIXES = (SD2_OPEN_CLIP_PREFIX, SDXL_OPEN_CLIP_PREFIX, SDXL_REFINER_PREFIX)


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def normalize_legacy_keys(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Early SD1.x files saved CLIP from transformers < 4.31 without its `text_model.` level
    (`cond_stage_model.transformer.embeddings…`); give those keys the level every tool now expects."""
    legacy = [k for k in state_dict if k.startswith(SD1_CLIP_PREFIX)
              and not k.startswith(SD1_CLIP_PREFIX + "text_model.")]
    for key in legacy:
        state_dict[SD1_CLIP_PREFIX + "text_model." + key[len(SD1_CLIP_PREFIX):]] = state_dict.pop(key)
    return state_dict


def configs_for_checkpoint(shapes: Mapping[str, Any], family: CheckpointFamily) -> FamilyConfigs:
    """The family's shipped configs, with every number the tensors decide read from their shapes."""
    shapes = {k: _shape(v) for k, v in shapes.items()}
    configs = shipped_configs(family)
    names = text_encoder_names(configs.model_index)
    pooled_dim = None
    for name, prefix in zip(names, family.text_encoder_prefixes):
        if not any(k.startswith(prefix) for k in shapes):
            continue
        is_open_clip = prefix in OPEN_CLIP_PREFIXES
        configs.text_encoders[name] = infer_clip_config(
            shapes, prefix, configs.text_encoders[name], open_clip=is_open_clip,
            drop_last_layer=prefix == SD2_OPEN_CLIP_PREFIX)
        if "projection_dim" in configs.text_encoders[name] and prefix in (SDXL_OPEN_CLIP_PREFIX, SDXL_REFINER_PREFIX):
            pooled_dim = configs.text_encoders[name]["projection_dim"]
    configs.unet = infer_unet_config(shapes, family, configs.unet, pooled_dim=pooled_dim)
    if any(k.startswith(VAE_PREFIX) for k in shapes):
        configs.vae = infer_vae_config(shapes, VAE_PREFIX, configs.vae)
    return configs


def _with_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k: v for k, v in state_dict.items() if k.startswith(prefix)}


def convert_unet(state_dict: Mapping[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    return convert_ldm_unet_checkpoint(_with_prefix(state_dict, UNET_PREFIX), config)


def convert_vae(state_dict: Mapping[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    return convert_ldm_vae_checkpoint(_with_prefix(state_dict, VAE_PREFIX), config)


def convert_text_encoder(state_dict: Mapping[str, Any], prefix: str, config: dict[str, Any]) -> dict[str, Any]:
    """Keys as the transformers class of `config` names them (`CLIPTextModel` is flat since
    transformers 5.6; `CLIPTextModelWithProjection` keeps its `text_model.` level)."""
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint

    subset = _with_prefix(state_dict, prefix)
    if prefix in OPEN_CLIP_PREFIXES:
        shim = SimpleNamespace(config=SimpleNamespace(hidden_size=config["hidden_size"]))
        converted = convert_open_clip_checkpoint(shim, subset, prefix=prefix)
        # The SD2.x text encoder ends one block early (see architecture.infer_clip_config) and has
        # no projection; diffusers' own filter for that only knows the full-size key names.
        layers = config["num_hidden_layers"]
        converted = {k: v for k, v in converted.items()
                     if not (k.startswith("text_model.encoder.layers.") and int(k.split(".")[3]) >= layers)}
    else:
        converted = convert_ldm_clip_checkpoint(subset, remove_prefix=prefix)
    with_projection = "CLIPTextModelWithProjection" in config.get("architectures", [])
    if not with_projection:
        converted = {k.removeprefix("text_model."): v for k, v in converted.items() if k != "text_projection.weight"}
    return converted


def convert_checkpoint(state_dict: Mapping[str, Any], family: CheckpointFamily,
                       configs: FamilyConfigs) -> dict[str, dict[str, Any]]:
    """Component name (`unet`, `vae`, `text_encoder`, `text_encoder_2`) → its converted state dict.

    Components absent from the file are absent from the result.
    """
    components: dict[str, dict[str, Any]] = {"unet": convert_unet(state_dict, configs.unet)}
    if any(k.startswith(VAE_PREFIX) for k in state_dict):
        components["vae"] = convert_vae(state_dict, configs.vae)
    for name, prefix in zip(text_encoder_names(configs.model_index), family.text_encoder_prefixes):
        if any(k.startswith(prefix) for k in state_dict):
            components[name] = convert_text_encoder(state_dict, prefix, configs.text_encoders[name])
    return components
