"""LyCORIS weight-change formats beside plain LoRA/LoCon: LoHa, LoKr and full diffs.

Each layer of such a file holds other factors under the same layer names as a LoRA (kohya's
`lora_unet_…`/`lora_te_…` or diffusers' dotted names), so they are matched to our parameters
exactly like LoRA layers (`lora_weights.match_lora`); only the delta is computed differently.
The formulas follow LyCORIS as ComfyUI applies it (comfy/weight_adapter/loha.py, lokr.py and
comfy/lora.py's `diff`/`diff_b`):

- LoHa: `(w1_a @ w1_b) ⊙ (w2_a @ w2_b) × alpha / rank`, rank = `hada_w1_b`'s rows; with Tucker
  cores `hada_t1`/`hada_t2` each product is `einsum("ijkl,jr,ip->prkl", t, b, a)`.
- LoKr: `kron(w1, w2) × alpha / dim`, each of w1, w2 given whole (`lokr_w1`) or as a product of two
  factors (`lokr_w1_a @ lokr_w1_b`, w2 optionally with a Tucker core `lokr_t2`); `dim` is the rank
  of the decomposed factor (w2's when both are), and with neither decomposed alpha is ignored.
- full diff: `.diff` is added to the weight as it is, `.diff_b` to the bias beside it.
- GLoRA (`.a1.weight` … `.b2.weight`): a change that reads the weight itself (`lora_glora`).

Any of these but a full diff may carry a DoRA `dora_scale` (`lora_dora`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from nodes.models.lora_glora import GLORA_FACTORS, GloraLayer

# A bias diff is keyed by its layer's name with this suffix; it changes the `.bias` beside the weight.
BIAS_LAYER_SUFFIX = ":bias"

_LOHA = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2")
_LOKR = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
_DIFF = ("diff", "diff_b")
FORMAT_FACTORS = frozenset(_LOHA + _LOKR + _DIFF + GLORA_FACTORS)


def _f32(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    return t.to(device=device, dtype=torch.float32)


def _tucker(core: torch.Tensor, b: torch.Tensor, a: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A Tucker-decomposed kernel: core [r, r, kh, kw], b [r, in], a [r, out] → [out, in, kh, kw]."""
    return torch.einsum("ijkl,jr,ip->prkl", _f32(core, device), _f32(b, device), _f32(a, device)).contiguous()


def _fits(shape: Sequence[int], out_features: int, numel: int) -> bool:
    # Sizes, not shapes: a linear layer's change also fits the 1×1 convolution it is elsewhere.
    return bool(shape) and shape[0] == out_features and math.prod(shape) == numel


@dataclass(frozen=True, eq=False)
class LohaLayer:
    """LoHa: the Hadamard product of two low-rank products (see the module docstring)."""

    w1_a: torch.Tensor
    w1_b: torch.Tensor
    w2_a: torch.Tensor
    w2_b: torch.Tensor
    alpha: float | None = None
    t1: torch.Tensor | None = None
    t2: torch.Tensor | None = None

    @property
    def rank(self) -> int:
        return int(self.w1_b.shape[0])

    @property
    def scale(self) -> float:
        return 1.0 if self.alpha is None else self.alpha / self.rank

    @property
    def out_features(self) -> int:
        return int(self.w1_a.shape[1] if self.t1 is not None else self.w1_a.shape[0])

    @property
    def numel(self) -> int:
        kernel = math.prod(self.t1.shape[2:]) if self.t1 is not None else 1
        return self.out_features * int(self.w1_b.shape[-1] if self.t1 is not None else
                                       math.prod(self.w1_b.shape[1:])) * kernel

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (self.w1_a, self.w1_b, self.w2_a, self.w2_b, self.t1, self.t2) if t is not None)

    def fits(self, shape: Sequence[int]) -> bool:
        return _fits(shape, self.out_features, self.numel)

    def delta(self, shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        if self.t1 is not None and self.t2 is not None:
            m1 = _tucker(self.t1, self.w1_b, self.w1_a, device)
            m2 = _tucker(self.t2, self.w2_b, self.w2_a, device)
        else:
            m1 = _f32(self.w1_a, device) @ _f32(self.w1_b, device).flatten(1)
            m2 = _f32(self.w2_a, device) @ _f32(self.w2_b, device).flatten(1)
        return (m1 * m2 * self.scale).reshape(tuple(shape))


@dataclass(frozen=True, eq=False)
class LokrLayer:
    """LoKr: the Kronecker product of two factors, either given whole or low-rank (see the module docstring)."""

    w1: torch.Tensor | None = None
    w2: torch.Tensor | None = None
    alpha: float | None = None
    w1_a: torch.Tensor | None = None
    w1_b: torch.Tensor | None = None
    w2_a: torch.Tensor | None = None
    w2_b: torch.Tensor | None = None
    t2: torch.Tensor | None = None

    @property
    def scale(self) -> float:
        dim = None
        if self.w1 is None and self.w1_b is not None:
            dim = int(self.w1_b.shape[0])
        if self.w2 is None and self.w2_b is not None:
            dim = int(self.w2_b.shape[0])
        return 1.0 if self.alpha is None or dim is None else self.alpha / dim

    def _factor_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        first = tuple(self.w1.shape) if self.w1 is not None else (int(self.w1_a.shape[0]), int(self.w1_b.shape[1]))  # type: ignore[union-attr]
        if self.w2 is not None:
            second = tuple(self.w2.shape)
        elif self.t2 is not None:
            second = (int(self.w2_a.shape[1]), int(self.w2_b.shape[1]), *self.t2.shape[2:])  # type: ignore[union-attr]
        else:
            second = (int(self.w2_a.shape[0]), *self.w2_b.shape[1:])  # type: ignore[union-attr]
        return first, second

    @property
    def out_features(self) -> int:
        first, second = self._factor_shapes()
        return first[0] * second[0]

    @property
    def numel(self) -> int:
        first, second = self._factor_shapes()
        return math.prod(first) * math.prod(second)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (self.w1, self.w2, self.w1_a, self.w1_b, self.w2_a, self.w2_b, self.t2)
                   if t is not None)

    def fits(self, shape: Sequence[int]) -> bool:
        return _fits(shape, self.out_features, self.numel)

    def delta(self, shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        if self.w1 is not None:
            w1 = _f32(self.w1, device)
        else:
            w1 = _f32(self.w1_a, device) @ _f32(self.w1_b, device)  # type: ignore[arg-type]
        if self.w2 is not None:
            w2 = _f32(self.w2, device)
        elif self.t2 is not None:
            w2 = _tucker(self.t2, self.w2_b, self.w2_a, device)  # type: ignore[arg-type]
        else:
            w2 = _f32(self.w2_a, device) @ _f32(self.w2_b, device).flatten(1)  # type: ignore[arg-type]
        if w2.ndim == 4:
            w1 = w1[:, :, None, None]
        return (torch.kron(w1, w2) * self.scale).reshape(tuple(shape))


@dataclass(frozen=True, eq=False)
class DiffLayer:
    """A full difference, added to its parameter as it is (LyCORIS "full", `.diff` / `.diff_b`)."""

    diff: torch.Tensor

    @property
    def out_features(self) -> int:
        return int(self.diff.shape[0])

    @property
    def numel(self) -> int:
        return int(self.diff.numel())

    @property
    def nbytes(self) -> int:
        return int(self.diff.nbytes)

    def fits(self, shape: Sequence[int]) -> bool:
        return _fits(shape, self.out_features, self.numel)

    def delta(self, shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        return _f32(self.diff, device).reshape(tuple(shape))


FormatLayer = LohaLayer | LokrLayer | DiffLayer | GloraLayer


def format_layers(factors: Mapping[str, Mapping[str, torch.Tensor]]) -> tuple[dict[str, FormatLayer], list[str]]:
    """LoHa, LoKr, GLoRA and diff layers from factors grouped by layer name (factor name without the dot →
    tensor, `alpha` included); also returns the keys of layers missing a factor they need."""
    layers: dict[str, FormatLayer] = {}
    incomplete: list[str] = []
    for name, parts in factors.items():
        alpha = float(parts["alpha"]) if "alpha" in parts else None
        if "hada_w1_a" in parts:
            if all(k in parts for k in _LOHA[:4]):
                layers[name] = LohaLayer(parts["hada_w1_a"], parts["hada_w1_b"], parts["hada_w2_a"],
                                         parts["hada_w2_b"], alpha, parts.get("hada_t1"), parts.get("hada_t2"))
            else:
                incomplete += [f"{name}.{k}" for k in _LOHA if k in parts]
        elif any(k in parts for k in _LOKR):
            has_w1 = "lokr_w1" in parts or ("lokr_w1_a" in parts and "lokr_w1_b" in parts)
            has_w2 = "lokr_w2" in parts or ("lokr_w2_a" in parts and "lokr_w2_b" in parts)
            if has_w1 and has_w2:
                layers[name] = LokrLayer(parts.get("lokr_w1"), parts.get("lokr_w2"), alpha, parts.get("lokr_w1_a"),
                                         parts.get("lokr_w1_b"), parts.get("lokr_w2_a"), parts.get("lokr_w2_b"),
                                         parts.get("lokr_t2"))
            else:
                incomplete += [f"{name}.{k}" for k in _LOKR if k in parts]
        elif any(k in parts for k in GLORA_FACTORS):
            if all(k in parts for k in GLORA_FACTORS):
                layers[name] = GloraLayer(parts["a1"], parts["a2"], parts["b1"], parts["b2"], alpha)
            else:
                incomplete += [f"{name}.{k}.weight" for k in GLORA_FACTORS if k in parts]
        if "diff" in parts:
            layers[name] = DiffLayer(parts["diff"])
        if "diff_b" in parts:
            layers[name + BIAS_LAYER_SUFFIX] = DiffLayer(parts["diff_b"])
    return layers, incomplete
