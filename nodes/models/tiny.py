"""Tiny random-weight checkpoints in the real single-file (LDM) layouts, built deterministically.

They have small widths but the real key structure and the real 49,408-token vocabulary: the
built-in default model (so the main job runs with no checkpoint installed) and the tests use
them. They go through `ldm_export`, the inverse of the loader's conversion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nodes.models.family import CheckpointFamily
from nodes.models.ldm_export import export_ldm_checkpoint
from nodes.models.modules import assign_weights, build_text_encoder, build_unet, build_vae
from nodes.models.shipped_configs import FamilyConfigs, shipped_configs, text_encoder_names

TINY_CHANNELS = [32, 64]
TINY_VAE_CHANNELS = [32, 32, 64, 64]
TINY_TEXT_WIDTH = 32
TINY_TIME_EMBED = 8


def tiny_configs(family: CheckpointFamily) -> FamilyConfigs:
    """The family's shipped configs shrunk: two UNet/VAE levels of 32 and 64 channels, one block
    per level, 2-layer CLIP encoders of width 32 (one head, as the 64-channel-head rule gives)."""
    configs = shipped_configs(family)
    unet = configs.unet
    attends = [t.startswith("CrossAttn") for t in unet["down_block_types"]]
    attends = [attends[0], attends[-1]]  # the first and last levels as in the family
    unet.update(
        block_out_channels=list(TINY_CHANNELS), layers_per_block=1, sample_size=8,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attends],
        up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attends)],
        cross_attention_dim=TINY_TEXT_WIDTH * len(configs.text_encoders),
    )
    if family.config_dir != "sd15":
        unet["attention_head_dim"] = [1, 1]
    if "transformer_layers_per_block" in unet:
        unet["transformer_layers_per_block"] = [1, 2]
    if family.config_dir == "sdxl_refiner":
        # Three levels, attention only in the middle one and in the middle block, as in the refiner
        # (whose outer levels have none): the layout a two-level model could not show.
        unet.update(block_out_channels=[*TINY_CHANNELS, TINY_CHANNELS[-1]], attention_head_dim=[1, 1, 1],
                    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                    transformer_layers_per_block=[1, 2, 2])
    if unet.get("addition_embed_type") == "text_time":
        unet["addition_time_embed_dim"] = TINY_TIME_EMBED
        unet["projection_class_embeddings_input_dim"] = TINY_TEXT_WIDTH + family.size_ids * TINY_TIME_EMBED
    # Four VAE levels, like the real one: images are 8× the latent size.
    configs.vae.update(block_out_channels=list(TINY_VAE_CHANNELS), layers_per_block=1,
                       down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
    for encoder in configs.text_encoders.values():
        encoder.update(hidden_size=TINY_TEXT_WIDTH, intermediate_size=2 * TINY_TEXT_WIDTH, num_hidden_layers=2,
                       num_attention_heads=1)
        if "CLIPTextModelWithProjection" in encoder["architectures"]:
            encoder["projection_dim"] = TINY_TEXT_WIDTH
    return configs


def _random_like(module: torch.nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Seeded values for every tensor, in a fixed key order; small so activations stay finite."""
    return {k: torch.randn(tuple(v.shape), generator=generator) * 0.05
            for k, v in sorted(module.state_dict().items())}


def tiny_modules(family: CheckpointFamily, seed: int = 0) -> dict[str, Any]:
    """Component name → a tiny diffusers/transformers module with seeded random weights."""
    configs = tiny_configs(family)
    generator = torch.Generator().manual_seed(seed)
    built = {"unet": build_unet(configs.unet), "vae": build_vae(configs.vae)}
    for name in text_encoder_names(configs.model_index):
        built[name] = build_text_encoder(configs.text_encoders[name])
    return {name: assign_weights(m, _random_like(m, generator), dtype=torch.float32, device="cpu", component=name)
            for name, m in built.items()}


def ldm_state_dict(family: CheckpointFamily, modules: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The single-file LDM state dict of a pipeline's modules."""
    names = sorted((n for n in modules if n.startswith("text_encoder")), key=lambda n: (len(n), n))
    return export_ldm_checkpoint(
        family, modules["unet"].state_dict(), modules["unet"].config, modules["vae"].state_dict(),
        modules["vae"].config, [modules[n].state_dict() for n in names])


def save_tiny_checkpoint(folder: Path, family: CheckpointFamily, seed: int = 0, suffix: str = ".safetensors",
                         name: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Write a tiny checkpoint; returns its path and the modules it was made from."""
    modules = tiny_modules(family, seed)
    state = {k: v.contiguous() for k, v in ldm_state_dict(family, modules).items()}
    path = Path(folder) / ((name or f"tiny-{family.name}") + suffix)
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "global_step": 1}, path)
    return path, modules
