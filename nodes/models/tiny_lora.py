"""Tiny random LoRAs in kohya's file layout, built deterministically for given modules.

The built-in LoRA (which matches the built-in tiny model) and the tests use them. Layer names
come from `lora_weights`' own name tables, so a file names its layers either the way kohya names
SD1.x layers (diffusers module names) or the way it names SDXL ones (LDM module names).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from nodes.models.family import CheckpointFamily
from nodes.models.lora_weights import TEXT_ENCODER_PREFIXES, kohya_unet_names, text_encoder_layer_names

NAMINGS = ("diffusers", "ldm")


def default_unet_layer(parameter: str, shape: tuple[int, ...]) -> bool:
    """Attention projections, feed-forwards and resnet 3×3 convolutions (LoCon): what a LoRA trains."""
    return ("attentions" in parameter and len(shape) in (2, 4)) or (
        "resnets" in parameter and parameter.endswith(("conv1.weight", "conv2.weight")))


def default_text_layer(parameter: str, shape: tuple[int, ...]) -> bool:
    return "encoder.layers." in parameter and len(shape) == 2


def _layer(generator: torch.Generator, shape: tuple[int, ...], rank: int, alpha: float | None,
           magnitude: float) -> dict[str, torch.Tensor]:
    out_features = shape[0]
    down_shape = (rank, *shape[1:])
    up_shape = (out_features, rank, 1, 1) if len(shape) == 4 else (out_features, rank)
    factors = {"lora_down.weight": torch.randn(down_shape, generator=generator) * magnitude,
               "lora_up.weight": torch.randn(up_shape, generator=generator) * magnitude}
    if alpha is not None:
        factors["alpha"] = torch.tensor(float(alpha))
    return factors


def kohya_lora(family: CheckpointFamily, unet: torch.nn.Module | None, text_encoders: Sequence[Any] = (), *,
               seed: int = 0, rank: int = 4, alpha: float | None = 2.0, naming: str = "diffusers",
               magnitude: float = 0.1, unet_layer: Callable[[str, tuple], bool] = default_unet_layer,
               text_layer: Callable[[str, tuple], bool] = default_text_layer) -> dict[str, torch.Tensor]:
    """A random LoRA state dict for these modules, in kohya's names (`naming`: how UNet layers
    are named, "diffusers" as kohya does for SD1.x, "ldm" as for SDXL)."""
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {NAMINGS}, not {naming!r}")
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    if unet is not None:
        names = kohya_unet_names(unet)
        for parameter, p in sorted(unet.named_parameters()):
            if parameter in names and unet_layer(parameter, tuple(p.shape)):
                name = names[parameter][NAMINGS.index(naming)]
                state.update({f"{name}.{k}": v for k, v in _layer(generator, tuple(p.shape), rank, alpha,
                                                                  magnitude).items()})
    for encoder, (kohya, peft) in zip(text_encoders, TEXT_ENCODER_PREFIXES[family.config_dir]):
        by_parameter = {p: n for n, p in text_encoder_layer_names(encoder, kohya, peft).items() if n.startswith(kohya)}
        for parameter, p in sorted(encoder.named_parameters()):
            if parameter in by_parameter and text_layer(parameter, tuple(p.shape)):
                state.update({f"{by_parameter[parameter]}.{k}": v for k, v in _layer(
                    generator, tuple(p.shape), rank, alpha, magnitude).items()})
    return {k: v.contiguous() for k, v in state.items()}
