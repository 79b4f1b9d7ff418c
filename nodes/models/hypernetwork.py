"""A1111 hypernetworks: small MLPs that change what every attention's keys and values are computed from.

The file (`models/hypernetworks`, a weights-only pickle) maps a context width (320, 640, 768, 1280 for
SD1.x) to two MLPs' state dicts, one for the key input and one for the value input, plus the
activation, layer-norm and dropout flags it was trained with. Each attention (self and cross) whose
key input has a listed width computes its keys from x + strength·mlp_k(x) and its values from
x + strength·mlp_v(x), as ComfyUI's nodes_hypernetwork.py applies it; dropout is a training-only
layer and is left out. The MLPs run in float32 on forward pre-hooks of `to_k` and `to_v`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.models.attention import BasicTransformerBlock
from torch.utils.hooks import RemovableHandle

from nodes.models.state_dict_files import CheckpointFileError
from nodes.models.unet_hooks import HookRun

ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "linear": torch.nn.Identity,
    "relu": torch.nn.ReLU,
    "leakyrelu": torch.nn.LeakyReLU,
    "elu": torch.nn.ELU,
    "swish": torch.nn.Hardswish,  # as A1111 and ComfyUI map it
    "tanh": torch.nn.Tanh,
    "sigmoid": torch.nn.Sigmoid,
    "softsign": torch.nn.Softsign,
    "mish": torch.nn.Mish,
}


def hypernetwork_mlp(weights: dict[str, torch.Tensor], activation: str, layer_norm: bool,
                     activate_output: bool) -> torch.nn.Sequential:
    """One MLP from its state dict: each `.weight` in order is a Linear, then the activation (not after
    the last weight unless `activate_output`), then, with `layer_norm`, the next `.weight` is its LayerNorm.

    As ComfyUI counts it, a LayerNorm after the last Linear makes that Linear not the last, so it is
    activated too (A1111 leaves it linear); matched on purpose, ComfyUI's images are the reference."""
    names = [key[:-len(".weight")] for key in weights if key.endswith(".weight")]
    layers: list[torch.nn.Module] = []
    index = 0
    while index < len(names):
        weight, bias = weights[f"{names[index]}.weight"], weights[f"{names[index]}.bias"]
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        linear.load_state_dict({"weight": weight.float(), "bias": bias.float()})
        layers.append(linear)
        if activation != "linear" and (index != len(names) - 1 or activate_output):
            layers.append(ACTIVATIONS[activation]())
        if layer_norm:
            index += 1
            norm_weight, norm_bias = weights[f"{names[index]}.weight"], weights[f"{names[index]}.bias"]
            norm = torch.nn.LayerNorm(norm_weight.shape[0])
            norm.load_state_dict({"weight": norm_weight.float(), "bias": norm_bias.float()})
            layers.append(norm)
        index += 1
    return torch.nn.Sequential(*layers).eval().requires_grad_(False)


@dataclass(frozen=True, eq=False)
class Hypernetwork:
    """Per context width, the (key, value) MLPs of one hypernetwork file."""

    nets: dict[int, tuple[torch.nn.Sequential, torch.nn.Sequential]]
    source: str


def read_hypernetwork(path: Path) -> Hypernetwork:
    """The hypernetwork in an A1111 `.pt` file; an error naming the file for anything else."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear, file-naming error
        raise CheckpointFileError(f"{path.name}: not a hypernetwork file A1111 saves ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(data, dict):
        raise CheckpointFileError(f"{path.name}: holds a {type(data).__name__}, not a hypernetwork")
    activation = data.get("activation_func", "linear")
    if activation not in ACTIVATIONS:
        raise CheckpointFileError(f"{path.name}: activation {activation!r} is not supported "
                                  f"(one of {', '.join(ACTIVATIONS)})")
    flags = dict(activation=activation, layer_norm=bool(data.get("is_layer_norm", False)),
                 activate_output=bool(data.get("activate_output", False)))
    nets: dict[int, Any] = {}
    for key, pair in data.items():
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            nets[int(key)] = (hypernetwork_mlp(pair[0], **flags), hypernetwork_mlp(pair[1], **flags))
    if not nets:
        raise CheckpointFileError(f"{path.name}: no hypernetwork layers (no context-width keys) in the file")
    return Hypernetwork(nets, path.name)


@dataclass(frozen=True, eq=False)
class HypernetworkHook:
    """A UnetHook adding `strength` × the hypernetwork's MLP outputs to every attention's key and value inputs."""

    hypernetwork: Hypernetwork
    strength: float

    def changed_input(self, net_index: int):
        def pre(_module, args):
            x = args[0]
            nets = self.hypernetwork.nets.get(int(x.shape[-1]))
            if nets is None:
                return None
            net = nets[net_index].to(x.device)
            return (x + (net(x.float()) * self.strength).to(x.dtype), *args[1:])
        return pre

    def attach(self, unet: torch.nn.Module, run: HookRun) -> list[RemovableHandle]:
        handles = []
        for block in unet.modules():
            if isinstance(block, BasicTransformerBlock):
                for attention in (block.attn1, block.attn2):
                    if attention is not None:
                        handles.append(attention.to_k.register_forward_pre_hook(self.changed_input(0)))
                        handles.append(attention.to_v.register_forward_pre_hook(self.changed_input(1)))
        return handles
