"""Control-LoRA files (Stability AI's `control-lora-*-rank*`): a ControlNet stored as its difference from the
UNet it was trained on, rebuilt on the sampled model's UNet when sampling starts, as ComfyUI's ControlLora does.

The file has `lora_controlnet` (a marker), low-rank `<layer>.up` / `<layer>.down` pairs and full tensors
(the hint block, zero convolutions, norms, biases), all under the original ControlNet keys. The ControlNet
starts as a copy of the UNet's down and middle blocks (with the model's LoRA patches, which ComfyUI's
copy also carries); full tensors replace the copy's, then each pair adds `up.flatten(1) @ down.flatten(1)`
reshaped to the layer's weight.
"""

from __future__ import annotations

import weakref
from dataclasses import replace
from typing import Any, Mapping

import torch

from nodes.models.controlnet_keys import hint_embedding_channels, ldm_controlnet_to_diffusers
from nodes.models.handles import ModelHandle
from nodes.models.ldm_export import unet_to_ldm
from nodes.models.lora_weights import UNET_PART
from nodes.models.modules import assign_weights
from nodes.models.patching import patched_weight

LORA_KEY = "lora_controlnet"  # the marker that tells a Control-LoRA file from a ControlNet
LDM_UNET_PREFIX = "model.diffusion_model."
SHARED_WITH_UNET = ("time_embed.", "label_emb.", "input_blocks.", "middle_block.")  # the UNet parts a ControlNet copies
UP, DOWN = ".up", ".down"


class ControlLora:
    """A loaded Control-LoRA file: the value of a CONTROL_NET socket until a model samples with it.

    `for_model` gives the applied control with a ControlNetModel built on that model's UNet; the last build
    is kept, so every step (and the negative side) of one sampling reuses it."""

    def __init__(self, weights: Mapping[str, torch.Tensor], source: str) -> None:
        missing = [k for k in weights if k.endswith(UP) and k[:-len(UP)] + DOWN not in weights]
        if missing:
            raise ValueError(f"{source}: Control-LoRA layer {missing[0]} has no matching {DOWN} tensor")
        self.weights = {k: v for k, v in weights.items() if k != LORA_KEY}
        self.source = source
        self._built: tuple[tuple, Any] | None = None
        self._applied: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @property
    def config(self) -> Mapping[str, Any]:
        return {}

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.weights.values())

    def for_model(self, applied: Any, model: ModelHandle) -> Any:
        """`applied` (an AppliedControl holding this) with the ControlNet built for `model` in its place."""
        key = self._model_key(model)
        cached = self._applied.get(applied)
        if cached is None or cached[0] != key:
            cached = (key, replace(applied, net=self.controlnet_for(model)))
            self._applied[applied] = cached
        return cached[1]

    def controlnet_for(self, model: ModelHandle) -> Any:
        """The ControlNetModel on `model`'s UNet (with its weight patches), on its device and in its dtype."""
        key = self._model_key(model)
        if self._built is None or self._built[0] != key:
            self._built = None  # let the previous one go before building the next
            self._built = (key, self._build(model))
        return self._built[1]

    @staticmethod
    def _model_key(model: ModelHandle) -> tuple:
        """Equal for the same live UNet and patches; weak, so a cached build never keeps a model alive."""
        return (weakref.ref(model.unet), tuple(weakref.ref(p) for p in model.patches if p.part == UNET_PART))

    def _build(self, model: ModelHandle) -> Any:
        from diffusers import ControlNetModel

        unet: Any = model.unet
        tensors = ldm_controlnet_to_diffusers(controlnet_ldm_weights(self.weights, _patched_unet_state(model),
                                                                     unet.config["layers_per_block"]))
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        with torch.device("meta"):
            net = ControlNetModel.from_unet(unet, load_weights_from_unet=False,
                                            conditioning_channels=int(shapes["controlnet_cond_embedding.conv_in.weight"][1]),
                                            conditioning_embedding_out_channels=tuple(hint_embedding_channels(shapes)))
        param = next(unet.parameters())
        return assign_weights(net, tensors, dtype=param.dtype, device=param.device,
                              component=f"{self.source}: control-lora")


def _patched_unet_state(model: ModelHandle) -> dict[str, torch.Tensor]:
    patches = [p for p in model.patches if p.part == UNET_PART and p.changes_weights]
    named = {name for p in patches for name in p.layers}
    return {k: patched_weight(k, v, patches) if k in named else v for k, v in model.unet.state_dict().items()}


def controlnet_ldm_weights(weights: Mapping[str, torch.Tensor], unet_state: Mapping[str, torch.Tensor],
                           layers_per_block: int) -> dict[str, torch.Tensor]:
    """The ControlNet's tensors under the original (unprefixed) keys: the UNet's shared parts, the file's full
    tensors in their place, then each low-rank pair's product added to its layer's weight (in float32)."""
    ldm = unet_to_ldm(dict(unet_state), layers_per_block)
    control = {k.removeprefix(LDM_UNET_PREFIX): v for k, v in ldm.items()
               if k.removeprefix(LDM_UNET_PREFIX).startswith(SHARED_WITH_UNET)}
    control.update({k: v for k, v in weights.items() if not k.endswith((UP, DOWN))})
    for key, up in weights.items():
        if not key.endswith(UP):
            continue
        layer = key[:-len(UP)]
        down = weights[layer + DOWN]
        base = control.get(layer + ".weight")
        if base is None:
            raise ValueError(f"Control-LoRA layer {layer} is not a layer of the model's ControlNet")
        delta = up.flatten(1).float() @ down.flatten(1).float()
        control[layer + ".weight"] = (base.float() + delta.reshape(base.shape)).to(base.dtype)
    return control
