"""ControlNet files → diffusers' `ControlNetModel`, with the config read from the tensors' shapes.

Two layouts, told apart by their keys as ComfyUI does: the original single files
(`control_v11p_sd15_*`: `control_model.input_hint_block…`, `zero_convs`, `middle_block_out`; some
ship without the `control_model.` prefix) and diffusers' own (`controlnet_cond_embedding…`). The
original layout is renamed by diffusers' single-file converter; nothing is ever fetched from a hub.
SD1.x, SD2.x and SDXL ControlNets load alike; a diffusers-layout file with `control_add_embedding` is
a union ControlNet (`ControlNetUnionModel`), one with `lora_controlnet` a Control-LoRA
(nodes.models.control_lora), built on the sampled model's UNet when sampling starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from nodes.models.control_lora import LORA_KEY, ControlLora
from nodes.models.controlnet_keys import (
    DIFFUSERS_HINT_KEY,
    hint_embedding_channels,
    index_count,
    ldm_controlnet_to_diffusers,
)
from nodes.models.controlnet_union import UnionControl, is_union
from nodes.models.handles import ModelHandle, module_nbytes
from nodes.models.ldm_export import unet_to_ldm
from nodes.models.modules import assign_weights
from nodes.models.state_dict_files import open_state_dict
from nodes.models.t2i_adapter_loading import (
    adapter_fits,
    adapter_weights_and_config,
    is_adapter,
    is_t2i_adapter,
)

LDM_CONTROL_PREFIX = "control_model."
LDM_HINT_KEY = "input_hint_block.0.weight"
SD1_HEADS = 8  # SD1.x attention has 8 heads at every level; later families use heads of 64 channels
HEAD_CHANNELS = 64
UNION_KEY = "control_add_embedding.linear_1.weight"
UNION_HEADS = 8  # the union type transformer's heads: not in the shapes; ComfyUI and xinsir's config use 8
SDXL_TIME_EMBED = 256  # width of each SDXL size id's embedding; it has no weights, so files do not say it


class ControlNetFileError(ValueError):
    """A file that is not a ControlNet this loader can read."""


@dataclass(frozen=True)
class ControlNetHandle:
    """A loaded ControlNet or T2I-Adapter: the value on a CONTROL_NET socket. `control_type` is the union
    ControlNet type SetUnionControlNetType chose (empty: auto)."""

    net: Any
    source: str
    control_type: tuple[int, ...] = ()

    @property
    def config(self) -> Mapping[str, Any]:
        return self.net.config

    @property
    def estimated_nbytes(self) -> int:
        nbytes = getattr(self.net, "nbytes", None)  # a Control-LoRA: its file's tensors until it is built
        return module_nbytes(self.net) if nbytes is None else int(nbytes)

    @property
    def applied_net(self) -> Any:
        """What an Apply node records: the net, or for a union ControlNet the net with its chosen type."""
        return UnionControl(self.net, self.control_type) if is_union(self.net) else self.net


def family_label(config: Mapping[str, Any]) -> str:
    """The family a UNet or ControlNet config belongs to, in words, for error messages."""
    width = config.get("cross_attention_dim")
    if config.get("addition_embed_type") == "text_time":
        return "SDXL"
    return {768: "SD1.x", 1024: "SD2.x"}.get(width, f"cross-attention width {width}")  # type: ignore[arg-type]


FIT_FIELDS = ("in_channels", "cross_attention_dim", "block_out_channels", "addition_embed_type")


def controls_for_model(controls: tuple, model: ModelHandle) -> tuple:
    """The applied controls as `model` samples with them, each checked to fit it: Control-LoRAs built on its
    UNet (the same built control for the same applied one, so positive and negative still share a pass)."""
    if not any(hasattr(c.net, "for_model") for c in controls):
        for control in controls:
            check_fits(control.net, control.source, model)
        return controls
    ready = tuple(c.net.for_model(c, model) if hasattr(c.net, "for_model") else c for c in controls)
    for control in ready:
        check_fits(control.net, control.source, model)
    return ready


def check_fits(net: Any, source: str, model: ModelHandle) -> None:
    """ValueError naming both when a ControlNet was made for another family than the checkpoint's; an SDXL
    ControlNet takes the width of the size ids' embedding from the UNet (no file records it)."""
    net = net.net if isinstance(net, UnionControl) else net
    unet_module: Any = model.unet
    unet, config = dict(unet_module.config), dict(net.config)
    if is_adapter(net):
        if not adapter_fits(net, unet):
            raise ValueError(f"T2I-Adapter {source!r} ({config['adapter_type']}, features {list(config['channels'])})"
                             f" does not fit checkpoint {model.source!r} ({family_label(unet)}, "
                             f"{model.family.name}): use an adapter made for the checkpoint's family")
        return
    if any(_normal(unet.get(f)) != _normal(config.get(f)) for f in FIT_FIELDS):
        raise ValueError(f"ControlNet {source!r} ({family_label(config)}) does not fit checkpoint "
                         f"{model.source!r} ({family_label(unet)}, {model.family.name}): use a ControlNet "
                         f"made for the checkpoint's family")
    _adopt_time_embedding(net, unet)


def _adopt_time_embedding(net: Any, unet: Mapping[str, Any]) -> None:
    width = unet.get("addition_time_embed_dim")
    if width is None or net.config.get("addition_time_embed_dim") == width or is_union(net):
        return
    from diffusers.models.embeddings import Timesteps

    net.add_time_proj = Timesteps(width, net.config["flip_sin_to_cos"], net.config["freq_shift"])
    net.register_to_config(addition_time_embed_dim=width)


def _normal(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def infer_controlnet_config(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    """A `ControlNetModel` config for a state dict in diffusers' key layout."""
    levels = index_count(shapes, r"down_blocks\.(\d+)\.")
    layers = index_count(shapes, r"down_blocks\.0\.resnets\.(\d+)\.")
    channels = [int(shapes[f"down_blocks.{i}.resnets.0.conv2.weight"][0]) for i in range(levels)]
    attends = [any(k.startswith(f"down_blocks.{i}.attentions.") for k in shapes) for i in range(levels)]
    depths = [max(1, index_count(shapes, rf"down_blocks\.{i}\.attentions\.0\.transformer_blocks\.(\d+)\."))
              for i in range(levels)]
    to_k = next(k for k in shapes if k.endswith("attn2.to_k.weight"))
    proj_in = next(k for k in shapes if k.endswith(".proj_in.weight"))
    linear = len(shapes[proj_in]) == 2
    embedding = hint_embedding_channels(shapes)
    config: dict[str, Any] = dict(
        in_channels=int(shapes["conv_in.weight"][1]),
        conditioning_channels=int(shapes[DIFFUSERS_HINT_KEY][1]),
        conditioning_embedding_out_channels=embedding,
        block_out_channels=channels,
        layers_per_block=layers,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attends],
        only_cross_attention=False,
        cross_attention_dim=int(shapes[to_k][1]),
        use_linear_projection=linear,
        # SD1.x projects in and out of attention with convolutions; SD2.x and SDXL with linear layers.
        attention_head_dim=[max(1, c // HEAD_CHANNELS) for c in channels] if linear else SD1_HEADS,
        transformer_layers_per_block=depths,
    )
    if "add_embedding.linear_1.weight" in shapes:
        config.update(addition_embed_type="text_time", addition_time_embed_dim=SDXL_TIME_EMBED,
                      projection_class_embeddings_input_dim=int(shapes["add_embedding.linear_1.weight"][1]))
    if UNION_KEY in shapes:
        types, trans_channels = (int(n) for n in shapes["task_embedding"])
        config.update(num_control_type=types, num_trans_channel=trans_channels, num_trans_head=UNION_HEADS,
                      num_trans_layer=index_count(shapes, r"transformer_layes\.(\d+)\."),
                      num_proj_channel=int(shapes["spatial_ch_projs.weight"][0]),
                      addition_time_embed_dim=int(shapes[UNION_KEY][1]) // types)
    return config


def _original_layout(state_dict: dict[str, torch.Tensor], base_unet: Any | None) -> dict[str, torch.Tensor]:
    """`control_model.*` (or unprefixed) original keys → diffusers' keys; a "difference" file gets the
    base model's weights added first, as ComfyUI's DiffControlNetLoader does."""
    control = {k.removeprefix(LDM_CONTROL_PREFIX): v for k, v in state_dict.items()
               if k.startswith(LDM_CONTROL_PREFIX) or LDM_HINT_KEY in state_dict}
    if "difference" in state_dict:
        if base_unet is None:
            raise ControlNetFileError("a difference ControlNet needs its base model: load it with "
                                      "DiffControlNetLoader")
        base = {k.removeprefix("model.diffusion_model."): v
                for k, v in unet_to_ldm(base_unet.state_dict(), base_unet.config["layers_per_block"]).items()}
        control = {k: v + base[k].to(v.dtype) if k in base and base[k].shape == v.shape else v
                   for k, v in control.items()}
    return ldm_controlnet_to_diffusers(control)


def controlnet_state_dict(state_dict: dict[str, torch.Tensor], name: str,
                          base_unet: Any | None = None) -> dict[str, torch.Tensor]:
    """The ControlNet's tensors in diffusers' layout, whichever layout the file has."""
    if DIFFUSERS_HINT_KEY in state_dict:
        return state_dict
    if LDM_CONTROL_PREFIX + LDM_HINT_KEY in state_dict or LDM_HINT_KEY in state_dict:
        return _original_layout(state_dict, base_unet)
    raise ControlNetFileError(f"{name}: not a ControlNet or T2I-Adapter (no {LDM_CONTROL_PREFIX}{LDM_HINT_KEY}, "
                              f"{DIFFUSERS_HINT_KEY}, conv_in.weight or body.0.in_conv.weight)")


def load_controlnet(path: Path, dtype: torch.dtype | None, device: str | torch.device,
                    base_unet: Any | None = None, name: str | None = None,
                    memory_format: torch.memory_format = torch.contiguous_format) -> ControlNetHandle:
    """A ControlNet file as a `ControlNetModel` (a T2I-Adapter as a `T2IAdapter`); a `config.json` beside a
    diffusers-layout ControlNet is used as its config, else the config is read from the shapes."""
    from diffusers import ControlNetModel, ControlNetUnionModel, T2IAdapter

    name = name or path.name
    source = open_state_dict(path)
    if LORA_KEY in source.tensors:
        return ControlNetHandle(ControlLora(dict(source.tensors), name), name)
    if is_t2i_adapter(source.tensors) and DIFFUSERS_HINT_KEY not in source.tensors:
        weights, adapter_config = adapter_weights_and_config(dict(source.tensors), name)
        with torch.device("meta"):
            adapter: Any = T2IAdapter(**adapter_config)
        return ControlNetHandle(assign_weights(adapter, weights, dtype=dtype, device=device,
                                               component=f"{name}: t2i adapter"), name)
    tensors = controlnet_state_dict(dict(source.tensors), name, base_unet)
    beside = path.parent / "config.json"
    if DIFFUSERS_HINT_KEY in source.tensors and beside.is_file():
        config = json.loads(beside.read_text(encoding="utf-8"))
    else:
        config = infer_controlnet_config({k: tuple(v.shape) for k, v in tensors.items()})
    with torch.device("meta"):
        net = (ControlNetUnionModel if UNION_KEY in tensors else ControlNetModel).from_config(config)
    net = assign_weights(net, tensors, dtype=dtype, device=device, component=f"{name}: controlnet",
                         memory_format=memory_format)
    return ControlNetHandle(net, name)
