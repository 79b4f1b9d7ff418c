"""Test LoRA files for the tiny checkpoints, and an independent by-hand merge to check them against."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file

from nodes.models.family import CheckpointFamily
from nodes.models.modules import build_text_encoder, build_unet
from nodes.models.shipped_configs import text_encoder_names
from nodes.models.tiny import tiny_configs
from nodes.models.tiny_lora import kohya_lora


def text_encoders(modules: Mapping[str, Any]) -> list[Any]:
    return [modules[n] for n in sorted((n for n in modules if n.startswith("text_encoder")), key=len)]


def meta_tiny_modules(family: CheckpointFamily) -> dict[str, Any]:
    """A tiny checkpoint's UNet and text encoders on the meta device: enough to shape a LoRA for it."""
    configs = tiny_configs(family)
    built = {"unet": build_unet(configs.unet)}
    built.update({n: build_text_encoder(configs.text_encoders[n]) for n in text_encoder_names(configs.model_index)})
    return built


def write_lora(folder: Path, name: str, family: CheckpointFamily, modules: Mapping[str, Any], **kw: Any) -> Path:
    """A random kohya LoRA for `modules`, written as `folder/name`; its state dict is also returned by
    `kohya_lora(...)` with the same arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    save_file(kohya_lora(family, modules["unet"], text_encoders(modules), **kw), str(path))
    return path


def summed_lora(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One LoRA whose every delta is the sum of `a`'s and `b`'s: their ranks side by side,
    each `up` pre-scaled by its alpha/rank, and alpha = the new rank (scale 1)."""
    out: dict[str, torch.Tensor] = {}
    for key in a:
        if not key.endswith(".lora_down.weight"):
            continue
        name = key[:-len(".lora_down.weight")]
        downs, ups = [], []
        for lora in (a, b):
            down, up = lora[f"{name}.lora_down.weight"], lora[f"{name}.lora_up.weight"]
            scale = float(lora[f"{name}.alpha"]) / down.shape[0] if f"{name}.alpha" in lora else 1.0
            downs.append(down)
            ups.append(up * scale)
        out[f"{name}.lora_down.weight"] = torch.cat(downs, dim=0).contiguous()
        out[f"{name}.lora_up.weight"] = torch.cat(ups, dim=1).contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(out[f"{name}.lora_down.weight"].shape[0]))
    return out


def merge_by_hand(module: torch.nn.Module, lora: Mapping[str, torch.Tensor], names: Mapping[str, str],
                  strength: float) -> None:
    """Add `strength × alpha/rank × up @ down` to `module`'s weights in place, the kohya formula
    written out independently of the code under test. `names`: LoRA layer name → parameter name."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for layer, parameter in names.items():
            if f"{layer}.lora_down.weight" not in lora:
                continue
            down, up = lora[f"{layer}.lora_down.weight"], lora[f"{layer}.lora_up.weight"]
            scale = float(lora[f"{layer}.alpha"]) / down.shape[0]
            weight = params[parameter]
            delta = (up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)).reshape(weight.shape)
            weight += strength * scale * delta
