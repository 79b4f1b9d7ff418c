"""Weight patches (LoRAs) applied to a module only while it is in use, then undone exactly.

Loaded modules are shared through the executor's cache, so a LoRA never changes them for good:
a MODEL or CLIP handle carries `WeightPatch`es, and the node that runs the module (KSampler,
CLIPTextEncode) wraps the call in `applied(...)`. Each patched parameter gets a new tensor,
`W + Σ strength × delta` computed in float32 and cast to W's dtype; the original tensor object
is put back afterwards, even when the run fails or is interrupted. The original is never written
to, so restoring is exact by construction and weights memory-mapped from a model file are never
touched. Only the patched parameters cost extra memory while a patch is applied.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Protocol, runtime_checkable

import torch

from nodes.models.handles import ClipHandle, ModelHandle
from nodes.models.lora_weights import TEXT_ENCODER_PARTS, UNET_PART
from nodes.models.quantize import int8_forwards
from nodes.models.unet_hooks import hooks_attached


class WeightDelta(Protocol):
    """What a patch adds to one parameter, and the memory it holds (LoRA and LyCORIS layers, merges)."""

    @property
    def nbytes(self) -> int: ...

    def delta(self, shape: torch.Size, device: torch.device) -> torch.Tensor: ...


@runtime_checkable
class WeightRewrite(Protocol):
    """A change that reads the weight it changes (GLoRA, DoRA): the new float32 weight at a strength."""

    @property
    def nbytes(self) -> int: ...

    def patched(self, weight: torch.Tensor, strength: float) -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)
class WeightPatch:
    """`strength` × one LoRA's layers for one part of a model (`unet`, `text_encoder`, `text_encoder_2`)."""

    part: str
    strength: float
    layers: Mapping[str, WeightDelta | WeightRewrite]  # parameter name → what it adds (LoRA/LyCORIS layers, merges)
    source: str = ""
    strength_model: float = 1.0  # the weight is scaled by this before the delta is added (merges)

    @property
    def changes_weights(self) -> bool:
        return bool(self.layers) and (self.strength != 0 or self.strength_model != 1.0)


def patched_weight(name: str, weight: torch.Tensor, patches: Iterable[WeightPatch],
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """`weight` with every patch that names it, in order, computed in float32 and cast to `dtype` (its own
    by default): the one formula for sampling, encoding and saving, so a saved merge equals what was sampled."""
    total = weight.to(torch.float32, copy=True)
    for patch in patches:
        layer = patch.layers.get(name)
        if layer is not None:
            if patch.strength_model != 1.0:
                total *= patch.strength_model
            if isinstance(layer, WeightRewrite):
                total = layer.patched(total, patch.strength)
            else:
                total += layer.delta(weight.shape, weight.device) * patch.strength
    return total.to(dtype or weight.dtype)


@contextmanager
def applied(module: torch.nn.Module, patches: Iterable[WeightPatch]) -> Iterator[torch.nn.Module]:
    """`module` with the patches added to its weights for the duration of the block."""
    patches = [p for p in patches if p.changes_weights]
    names = list(dict.fromkeys(name for p in patches for name in p.layers))
    params = dict(module.named_parameters()) if names else {}
    originals: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            for name in names:
                param = params[name]
                weight = param.data
                originals[name] = weight
                param.data = patched_weight(name, weight, patches)
        yield module
    finally:
        for name, weight in originals.items():
            params[name].data = weight


@contextmanager
def model_patches_applied(model: ModelHandle) -> Iterator[torch.nn.Module]:
    """The model's UNet with its weight patches and forward hooks (`unet_hooks`), for the duration of
    a `with` block (sampling); at precision int8, its layers then compute from the patched weights in int8."""
    patches = [p for p in model.patches if p.part == UNET_PART]
    with applied(model.unet, patches) as unet, hooks_attached(unet, model.hooks), \
            int8_forwards(unet, model.int8, patches):
        yield unet


@contextmanager
def clip_patches_applied(clip: ClipHandle) -> Iterator[ClipHandle]:
    """The CLIP's text encoders with their patches, for the duration of a `with` block (encoding)."""
    with ExitStack() as stack:
        for part, encoder in zip(TEXT_ENCODER_PARTS, clip.text_encoders):
            stack.enter_context(applied(encoder, [p for p in clip.patches if p.part == part]))
        yield clip
