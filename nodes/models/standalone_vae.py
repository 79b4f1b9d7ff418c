"""Loading a standalone VAE file (`models/vae`): LDM keys (with or without the
`first_stage_model.` prefix) or diffusers keys, architecture read from the tensors' shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nodes.models.architecture import infer_vae_config
from nodes.models.family import SD15, VAE_PREFIX
from nodes.models.ldm_convert import convert_vae
from nodes.models.modules import assign_weights, build_vae
from nodes.models.shipped_configs import shipped_configs
from nodes.models.state_dict_files import CheckpointFileError, open_state_dict


def load_vae(path: Path, dtype: torch.dtype | None, device: str | torch.device,
             memory_format: torch.memory_format = torch.contiguous_format) -> tuple[Any, float]:
    """(AutoencoderKL, its config's scaling factor) from a VAE file; errors name the file."""
    source = open_state_dict(path)
    state = source.tensors
    if any(k.startswith("encoder.down.") for k in state):  # LDM layout without the checkpoint prefix
        state = {VAE_PREFIX + k: v for k, v in state.items()}
    base = shipped_configs(SD15).vae
    if any(k.startswith(VAE_PREFIX) for k in state):
        config = infer_vae_config({k: tuple(v.shape) for k, v in state.items()}, VAE_PREFIX, base)
        weights = convert_vae(state, config)
    elif any(k.startswith("encoder.down_blocks.") for k in state):
        weights, config = state, base
    else:
        raise CheckpointFileError(f"{path}: no VAE weights found (expected encoder/decoder tensors)")
    vae = assign_weights(build_vae(config), weights, dtype=dtype, device=device, component=f"{path.name}: vae",
                         memory_format=memory_format, release=source.release)
    return vae, float(config.get("scaling_factor", 0.18215))
