"""LyCORIS GLoRA layers: a change that depends on the weight it is applied to, `W·A + B`.

A GLoRA layer holds `a1`, `a2`, `b1`, `b2` (`<layer>.a1.weight` …, optionally `<layer>.alpha`) and
changes a weight W by `scale × (W·A + B)`, scale = alpha / rank. LyCORIS wrote it in two layouts,
told apart by the factors' shapes as ComfyUI does (comfy/weight_adapter/glora.py):

- old: `a1` [rank, in], `a2` [in, rank], `b1` [rank, in(·kernel)], `b2` [out, rank];
  change `W.flatten(1) @ a2 @ a1 + b2 @ b1`, rank = `a1`'s rows.
- new: `a1` [in, rank], `a2` [rank, in], `b1` [out, rank], `b2` [rank, in(·kernel)];
  change `W ×₁ a1 ×₁ a2 + b1 @ b2` (the input axis of W multiplied by `a1 @ a2`), rank = `a2`'s rows.

When both layouts fit the shapes (all sides equal the rank) the old one is used only for a square
weight whose side is `a2`'s rows, ComfyUI's rule. Since W is read, the change is computed from the
weight as it is when this layer's turn comes (after earlier patches), as ComfyUI applies patches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

GLORA_SUFFIXES = {".a1.weight": "a1", ".a2.weight": "a2", ".b1.weight": "b1", ".b2.weight": "b2"}
GLORA_FACTORS = tuple(GLORA_SUFFIXES.values())


@dataclass(frozen=True, eq=False)
class GloraLayer:
    """A GLoRA layer (see the module docstring): `patched(weight, strength)` rather than a fixed delta."""

    a1: torch.Tensor
    a2: torch.Tensor
    b1: torch.Tensor
    b2: torch.Tensor
    alpha: float | None = None

    def _old_layout(self, shape: Sequence[int] | None) -> bool | None:
        """True: the old layout, False: the new, None: neither fits the factors' shapes."""
        a1, a2, b1, b2 = (t.shape for t in (self.a1, self.a2, self.b1, self.b2))
        old = b2[1] == b1[0] == a1[0] == a2[1]
        new = b2[0] == b1[1] == a1[1] == a2[0]
        if old and new:  # ComfyUI keeps the old reading only for a square weight of a2's rows
            return shape is not None and len(shape) >= 2 and a2[0] == shape[0] == shape[1]
        return True if old else False if new else None

    def _rank(self, old: bool) -> int:
        return int(self.a1.shape[0] if old else self.a2.shape[0])

    def scale(self, shape: Sequence[int] | None = None) -> float:
        old = self._old_layout(shape)
        return 1.0 if self.alpha is None or old is None else self.alpha / self._rank(old)

    @property
    def out_features(self) -> int:
        return int(self.b2.shape[0] if self._old_layout(None) else self.b1.shape[0])

    @property
    def numel(self) -> int:
        b = self.b1 if self._old_layout(None) else self.b2
        return self.out_features * math.prod(b.shape[1:])

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (self.a1, self.a2, self.b1, self.b2))

    def fits(self, shape: Sequence[int]) -> bool:
        old = self._old_layout(shape)
        if old is None or len(shape) < 2:
            return False
        out, width = shape[0], math.prod(shape[1:])
        a1, a2, b1, b2 = (t.flatten(1).shape for t in (self.a1, self.a2, self.b1, self.b2))
        if old:  # W.flatten(1) @ a2 @ a1 and b2 @ b1, each [out, width]
            return b2[0] == out and b1[1] == width and a2[0] == width and a1[1] == width
        return b1[0] == out and b2[1] == width and a1[0] == shape[1] and a2[1] == shape[1]

    def change(self, weight: torch.Tensor) -> torch.Tensor:
        """The scaled change to `weight` (float32, already on its device): what strength 1 adds."""
        old = self._old_layout(weight.shape)
        a1, a2, b1, b2 = (t.to(device=weight.device, dtype=torch.float32).flatten(1)
                          for t in (self.a1, self.a2, self.b1, self.b2))
        if old:
            product = weight.flatten(1) @ a2 @ a1 + b2 @ b1
        else:  # the input axis of W (axis 1, any kernel after it) times a1 @ a2
            product = torch.tensordot(weight, a1 @ a2, dims=([1], [0])).movedim(-1, 1) + (b1 @ b2).reshape(weight.shape)
        return product.reshape(weight.shape) * self.scale(weight.shape)

    def patched(self, weight: torch.Tensor, strength: float) -> torch.Tensor:
        """`weight` (float32) with this layer's change at `strength`."""
        return weight + strength * self.change(weight)
