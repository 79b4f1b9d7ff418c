"""The values that flow on MODEL, CLIP and VAE sockets.

Each is an immutable handle on loaded modules plus what a downstream node needs to use them.
Handles are shared through the executor's cache, so nodes never modify the modules in place:
a node that changes a model (a LoRA, a clip skip) returns a new handle describing the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from nodes.models.family import CheckpointFamily
from nodes.models.quantize import Int8Weights
from nodes.sampling import ModelSampling


def module_nbytes(*modules: Any) -> int:
    return sum(p.numel() * p.element_size() for m in modules if m is not None for p in m.parameters())


def patch_nbytes(patches: tuple) -> int:
    """Memory of LoRA patch tensors (their layers' factors)."""
    return sum(layer.nbytes for patch in patches for layer in patch.layers.values())


def handle_nbytes(patches: tuple, *modules: Any) -> int:
    """A patched handle shares its modules with the unpatched one it came from: count only its patches,
    so a cached LoRA'd model does not look like a second copy of the UNet."""
    return patch_nbytes(patches) if patches else module_nbytes(*modules)


@dataclass(frozen=True)
class ModelHandle:
    """A denoising UNet with its noise schedule. `patches` are weight deltas applied while sampling."""

    unet: torch.nn.Module
    family: CheckpointFamily
    model_sampling: ModelSampling
    source: str
    latent_scale: float = 0.18215
    patches: tuple = field(default=())
    hooks: tuple = field(default=())  # UnetHooks attached while sampling (FreeU, HyperTile...: unet_hooks)
    post_cfg: tuple = field(default=())  # PostCfg guidance terms added after CFG (PAG: sampling.cfg)
    int8: Int8Weights | None = None  # loaded at precision int8: samples with int8 layers (quantize)

    @property
    def estimated_nbytes(self) -> int:
        return handle_nbytes(self.patches, self.unet)


@dataclass(frozen=True)
class ClipHandle:
    """The text encoders and tokenizers of a checkpoint; `layer_idx` is CLIPSetLastLayer's choice."""

    text_encoders: tuple
    tokenizers: tuple
    family: CheckpointFamily
    layer_idx: int | None = None
    source: str = ""
    patches: tuple = field(default=())

    @property
    def estimated_nbytes(self) -> int:
        return handle_nbytes(self.patches, *self.text_encoders)


@dataclass(frozen=True)
class VaeHandle:
    """An AutoencoderKL and the latent scaling factor of its family."""

    vae: torch.nn.Module
    scaling_factor: float
    source: str = ""

    @property
    def estimated_nbytes(self) -> int:
        return module_nbytes(self.vae)
