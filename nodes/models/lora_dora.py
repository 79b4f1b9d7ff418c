"""DoRA: a LoRA, LoHa, LoKr or GLoRA layer with a `dora_scale`, applied by weight decomposition.

DoRA keeps the direction of `W + delta` and sets its magnitude per row (or per column) to the trained
`dora_scale`. We apply it as ComfyUI does (comfy/weight_adapter/base.py `weight_decompose`), in float32:

    W' = (W + delta) × dora_scale / (norm + eps)

- Output axis (`dora_scale` has the weight's rows, LyCORIS' usual [out, 1(, 1, 1)]): norm is each row's
  norm **of W before the change**, not of `W + delta`; a ComfyUI quirk we match on purpose.
- Input axis (any other `dora_scale`, LyCORIS' [1, in(, 1, 1)]): norm is each column's norm of `W + delta`
  (a column: one input channel, its whole kernel, across every output).

`delta` carries the layer's own alpha/rank. The strength is not applied inside the decomposition: the
result is `W + strength × (W' − W)`, a straight line from the weight (strength 0) to the DoRA weight (1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from nodes.models.lora_glora import GloraLayer

DORA_SCALE = "dora_scale"  # the factor's name: `<layer>.dora_scale`


class DeltaLayer(Protocol):
    """A layer whose change does not depend on the weight (LoRA/LoCon, LoHa, LoKr)."""

    @property
    def out_features(self) -> int: ...

    @property
    def numel(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    def fits(self, shape: Sequence[int]) -> bool: ...

    def delta(self, shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)
class DoraLayer:
    """`inner` (LoRA, LoHa, LoKr or GLoRA) with a DoRA magnitude (see the module docstring)."""

    inner: DeltaLayer | GloraLayer
    dora_scale: torch.Tensor

    @property
    def out_features(self) -> int:
        return int(self.inner.out_features)

    @property
    def numel(self) -> int:
        return int(self.inner.numel)

    @property
    def nbytes(self) -> int:
        return int(self.inner.nbytes) + self.dora_scale.nbytes

    def _on_output_axis(self, shape: Sequence[int]) -> bool:
        return bool(self.dora_scale.ndim) and self.dora_scale.shape[0] == shape[0]  # ComfyUI's test

    def _magnitude(self, shape: Sequence[int], device: torch.device | str) -> torch.Tensor:
        """`dora_scale` shaped to broadcast over a weight of `shape` along its axis."""
        scale = self.dora_scale.to(device=device, dtype=torch.float32)
        if scale.numel() == 1:
            return scale.reshape([1] * len(shape))
        ones = [1] * (len(shape) - 2)
        if self._on_output_axis(shape):
            return scale.reshape(shape[0], 1, *ones)
        return scale.reshape(1, shape[1], *ones)

    def fits(self, shape: Sequence[int]) -> bool:
        if not self.inner.fits(shape) or len(shape) < 2:
            return False
        size = self.dora_scale.numel()
        return size == 1 or size == (shape[0] if self._on_output_axis(shape) else shape[1])

    def _delta(self, weight: torch.Tensor) -> torch.Tensor:
        if isinstance(self.inner, GloraLayer):
            return self.inner.change(weight)
        return self.inner.delta(weight.shape, weight.device)

    def patched(self, weight: torch.Tensor, strength: float) -> torch.Tensor:
        """`weight` (float32) moved `strength` of the way to its DoRA decomposition."""
        changed = weight + self._delta(weight)
        if self._on_output_axis(weight.shape):
            norm = weight.flatten(1).norm(dim=1).reshape(weight.shape[0], *[1] * (weight.ndim - 1))
        else:
            norm = changed.transpose(0, 1).flatten(1).norm(dim=1).reshape(1, weight.shape[1], *[1] * (weight.ndim - 2))
        decomposed = changed * (self._magnitude(weight.shape, weight.device) / (norm + torch.finfo(torch.float32).eps))
        if strength == 1.0:
            return decomposed
        return weight + strength * (decomposed - weight)
