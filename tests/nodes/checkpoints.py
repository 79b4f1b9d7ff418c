"""Test checkpoints: tiny ones come from `nodes.models.tiny`; full-size ones are shapes only
(meta tensors), for checking key mapping.
"""

from __future__ import annotations

from typing import Any

import torch

from nodes.models.family import CheckpointFamily
from nodes.models.modules import build_text_encoder, build_unet, build_vae
from nodes.models.shipped_configs import shipped_configs, text_encoder_names
from nodes.models.tiny import (  # noqa: F401
    TINY_CHANNELS,
    TINY_TEXT_WIDTH,
    TINY_TIME_EMBED,
    ldm_state_dict,
    save_tiny_checkpoint,
    tiny_configs,
    tiny_modules,
)


def meta_modules(family: CheckpointFamily) -> dict[str, Any]:
    """Component name → a full-size module on the meta device (shapes only), from the shipped configs."""
    configs = shipped_configs(family)
    built = {"unet": build_unet(configs.unet), "vae": build_vae(configs.vae)}
    for name in text_encoder_names(configs.model_index):
        built[name] = build_text_encoder(configs.text_encoders[name])
    return built


def full_size_ldm_shapes(family: CheckpointFamily) -> dict[str, torch.Tensor]:
    """A full-size checkpoint's tensors as meta tensors: its real key set and shapes, no data."""
    return ldm_state_dict(family, meta_modules(family))


def state_dicts_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
