"""ControlNet residuals for one UNet call: each applied ControlNet whose part of the schedule covers
the current sigma runs on the same input, and their outputs are summed (ComfyUI chains them so).

An applied control is any object with `net` (a diffusers ControlNetModel or T2IAdapter, or a UnionControl:
a ControlNetUnionModel with its type), `hint` [B, C, H, W]
in 0..1, `strength`, `start_percent` and `end_percent` (nodes.conditioning.value.AppliedControl).

A hint is the same at every step of a run, so a run's `PreparedHints` resizes, batches and moves each one
once (and keeps a T2I-Adapter's features, which depend on the hint alone, as ComfyUI does); a step then
costs the UNet plus each ControlNet's forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from nodes.models.controlnet_union import UnionControl
from nodes.models.t2i_adapter_loading import adapter_features, hint_size, is_adapter
from nodes.resample import resize

from .schedule import ModelSampling

LATENT_TO_PIXELS = 8


@dataclass
class Residuals:
    """What the controls add inside one UNet call: ControlNets' skip (`down`) and mid-block residuals,
    T2I-Adapters' features added within the down blocks (`intrablock`), each None when absent."""

    down: list[torch.Tensor] | None = None
    mid: torch.Tensor | None = None
    intrablock: list[torch.Tensor] | None = None

    def __add__(self, other: "Residuals") -> "Residuals":
        return Residuals(_sum_lists(self.down, other.down), _sum(self.mid, other.mid),
                         _sum_lists(self.intrablock, other.intrablock))

    def add_(self, other: "Residuals") -> "Residuals":
        """`self + other` written into self's tensors where they match: only for residuals this step computed
        (a ControlNet's outputs, scaled adapter features), never for tensors kept across steps."""
        self.down = _sum_lists(self.down, other.down, in_place=True)
        self.mid = _sum(self.mid, other.mid, in_place=True)
        self.intrablock = _sum_lists(self.intrablock, other.intrablock, in_place=True)
        return self

    def unet_kwargs(self, dtype: torch.dtype) -> dict[str, Any]:
        """The diffusers UNet arguments; the adapter list is a fresh one, as the UNet pops from it."""
        kwargs: dict[str, Any] = {}
        if self.down is not None and self.mid is not None:
            kwargs["down_block_additional_residuals"] = tuple(r.to(dtype) for r in self.down)
            kwargs["mid_block_additional_residual"] = self.mid.to(dtype)
        if self.intrablock is not None:
            kwargs["down_intrablock_additional_residuals"] = [r.to(dtype) for r in self.intrablock]
        return kwargs


def _sum(a: torch.Tensor | None, b: torch.Tensor | None, in_place: bool = False) -> torch.Tensor | None:
    if a is None or b is None:
        return b if a is None else a
    if in_place and a.shape == b.shape and a.dtype == b.dtype and a.device == b.device:
        return a.add_(b)
    return a + b


def _sum_lists(a: list[torch.Tensor] | None, b: list[torch.Tensor] | None,
               in_place: bool = False) -> list[torch.Tensor] | None:
    if a is None or b is None:
        return b if a is None else a
    summed = [_sum(x, y, in_place) for x, y in zip(a, b)]
    return summed + (a[len(b):] if len(a) > len(b) else b[len(a):])  # type: ignore[return-value]


def percent_to_sigma(model_sampling: ModelSampling, percent: float) -> float:
    """The sigma at a fraction of the schedule, as ComfyUI maps start/end percent (0 → ∞, 1 → 0)."""
    if percent <= 0.0:
        return math.inf
    if percent >= 1.0:
        return 0.0
    return float(model_sampling.sigma((1.0 - percent) * 999.0))


def is_active(control: Any, sigma: float, model_sampling: ModelSampling) -> bool:
    return (percent_to_sigma(model_sampling, control.end_percent) <= sigma
            <= percent_to_sigma(model_sampling, control.start_percent))


def _to_batch(hint: torch.Tensor, batch: int) -> torch.Tensor:
    if hint.shape[0] != batch:
        hint = hint.repeat(math.ceil(batch / hint.shape[0]), *([1] * (hint.ndim - 1)))[:batch]
    return hint


def hint_for(hint: torch.Tensor, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """The hint at the latent's pixel size, or `size` (nearest-exact after a centre crop, as ComfyUI resizes
    it) and repeated to its batch."""
    height, width = size or (x.shape[2] * LATENT_TO_PIXELS, x.shape[3] * LATENT_TO_PIXELS)
    if tuple(hint.shape[2:]) != (height, width):
        hint = resize(hint.float(), width, height, "nearest-exact", "center")
    return _to_batch(hint, x.shape[0])


def _net_parameter(net: Any) -> torch.Tensor:
    return next((net.net if isinstance(net, UnionControl) else net).parameters())


class PreparedHints:
    """One sampling run's hints, each at the latent's size and batch on its net's device and dtype, and
    T2I-Adapters' features: prepared on a control's first step, reused by the others. Keyed by the applied
    control (kept alive here, so its id stays its own), the latent's shape and the net's device and dtype."""

    def __init__(self) -> None:
        self._kept: dict[tuple, tuple[Any, Any]] = {}
        self.prepared = 0  # how many hints were prepared (one per control and latent shape in a run)

    def _get(self, kind: str, control: Any, x_in: torch.Tensor, make: Any) -> Any:
        param = _net_parameter(control.net)  # a net moved between runs of a kept guider gets its hint anew
        key = (kind, id(control), tuple(x_in.shape), param.device, param.dtype)
        if key not in self._kept:
            self.prepared += 1
            self._kept[key] = (control, make())
        return self._kept[key][1]

    def hint(self, control: Any, x_in: torch.Tensor) -> torch.Tensor:
        """The control's hint resized to `x_in`'s pixel size and batch, on its net's device and dtype."""
        param = _net_parameter(control.net)
        return self._get("hint", control, x_in, lambda: hint_for(control.hint, x_in).to(param.device, param.dtype))

    def adapter_features(self, control: Any, x_in: torch.Tensor) -> list[torch.Tensor]:
        """A T2I-Adapter's features for one image of `x_in`'s size (they depend on the hint alone)."""
        def make() -> list[torch.Tensor]:
            net = control.net
            height, width = x_in.shape[2] * LATENT_TO_PIXELS, x_in.shape[3] * LATENT_TO_PIXELS
            return adapter_features(net, hint_for(control.hint, x_in[:1], hint_size(net, height, width)))
        return self._get("adapter", control, x_in, make)


def _adapter_residuals(control: Any, x_in: torch.Tensor, hints: PreparedHints) -> Residuals:
    """A T2I-Adapter's features times the strength; an SDXL adapter's last one goes to the mid block,
    which diffusers' UNet takes from the same list."""
    features = hints.adapter_features(control, x_in)
    return Residuals(intrablock=[_to_batch(f, x_in.shape[0]) * float(control.strength) for f in features])


def control_residuals(controls: Sequence[Any], x_in: torch.Tensor, timestep: torch.Tensor, sigma: float,
                      embeds: torch.Tensor, added: dict[str, torch.Tensor],
                      model_sampling: ModelSampling, hints: PreparedHints | None = None) -> Residuals | None:
    """The summed residuals of the controls active at `sigma`; None when none is. `hints`: the run's
    prepared hints (without, each is prepared for this call alone)."""
    hints = PreparedHints() if hints is None else hints
    total: Residuals | None = None
    for control in controls:
        if not is_active(control, sigma, model_sampling):
            continue
        if isinstance(control.net, UnionControl):
            part = _union_residuals(control, x_in, timestep, embeds, added, hints.hint(control, x_in))
        elif is_adapter(control.net):
            part = _adapter_residuals(control, x_in, hints)
        else:
            part = _controlnet_residuals(control.net, hints.hint(control, x_in), float(control.strength), x_in,
                                         timestep, embeds, added)
        part = _advanced(part, control)
        total = part if total is None else total.add_(part)  # each part is this step's own: add in place
    return total


def _advanced(part: Residuals, control: Any) -> Residuals:
    """Advanced-ControlNet's extras on a control, when it has them: per-block multipliers
    (`block_scales(count)` → down scales, mid scale) and a `mask` [B, H, W] scaling each residual."""
    scales = getattr(control, "block_scales", None)
    mask = getattr(control, "mask", None)
    if scales is None and mask is None:
        return part
    if part.intrablock is not None:
        raise ValueError(f"ControlNet {control.source!r}: Advanced-ControlNet's weights and masks are supported "
                         "on ControlNets, not on T2I-Adapters")
    down, mid = list(part.down or []), part.mid
    if scales is not None:
        down_scales, mid_scale = scales(len(down))
        down = [r * s for r, s in zip(down, down_scales)]
        mid = None if mid is None else mid * mid_scale
    if mask is not None:
        def masked(r: torch.Tensor) -> torch.Tensor:
            m = F.interpolate(mask.reshape(-1, 1, *mask.shape[-2:]).to(r.device, r.dtype), size=r.shape[2:],
                              mode="bilinear")
            return r * _to_batch(m, r.shape[0])
        down = [masked(r) for r in down]
        mid = None if mid is None else masked(mid)
    return Residuals(down if part.down is not None else None, mid)


def _controlnet_residuals(net: Any, hint: torch.Tensor, strength: float, x_in: torch.Tensor, timestep: torch.Tensor,
                          embeds: torch.Tensor, added: dict[str, torch.Tensor], **union: Any) -> Residuals:
    param = next(net.parameters())
    kwargs = {"added_cond_kwargs": {k: v.to(param.device, param.dtype) for k, v in added.items()}} if added else {}
    cond = hint.to(param.device, param.dtype)
    down, mid = net(x_in.to(param.device, param.dtype), timestep.to(param.device).expand(x_in.shape[0]),
                    encoder_hidden_states=embeds.to(param.device, param.dtype),
                    # a union ControlNet takes lists: one hint and one scale per control type
                    controlnet_cond=[cond] if union else cond, conditioning_scale=[strength] if union else strength,
                    return_dict=False, **kwargs, **union)
    return Residuals(list(down), mid)


def _union_residuals(control: Any, x_in: torch.Tensor, timestep: torch.Tensor, embeds: torch.Tensor,
                     added: dict[str, torch.Tensor], hint: torch.Tensor) -> Residuals:
    """A union ControlNet as ComfyUI runs it: the type's one-hot (all zeros for auto) joins the time embedding;
    with a type, the hint's features get that type's alpha from the type transformer, for auto they go in bare.

    diffusers' type transformer attends across the batch (nn.MultiheadAttention, not batch-first), ComfyUI's
    over one image's tokens: the same when every image has the same hint, so differing hints run one by one."""
    net, types = control.net.net, control.net.control_type
    if len(types) > 1:
        raise ValueError(f"ControlNet {control.source!r}: one union control type at a time, got {list(types)}")
    if any(t >= net.config.num_control_type for t in types):
        raise ValueError(f"ControlNet {control.source!r} knows {net.config.num_control_type} control types; "
                         f"type {types[0]} is not one of them")
    if hint.shape[0] > 1 and not bool((hint == hint[:1]).all()):
        parts = [_union_residuals_of(net, types, hint[i:i + 1], float(control.strength), x_in[i:i + 1],
                                     timestep, embeds[i:i + 1], {k: v[i:i + 1] for k, v in added.items()})
                 for i in range(hint.shape[0])]
        return Residuals([torch.cat(d) for d in zip(*(p.down for p in parts))],
                         torch.cat([p.mid for p in parts]))  # type: ignore[misc]
    return _union_residuals_of(net, types, hint, float(control.strength), x_in, timestep, embeds, added)


def _union_residuals_of(net: Any, types: tuple[int, ...], hint: torch.Tensor, strength: float, x_in: torch.Tensor,
                        timestep: torch.Tensor, embeds: torch.Tensor, added: dict[str, torch.Tensor]) -> Residuals:
    one_hot = torch.zeros((x_in.shape[0], net.config.num_control_type))
    one_hot[:, list(types)] = 1.0
    union = dict(control_type=one_hot.to(x_in.device), control_type_idx=list(types) or [0])
    if types:
        return _controlnet_residuals(net, hint, strength, x_in, timestep, embeds, added, **union)
    handle = net.spatial_ch_projs.register_forward_hook(lambda module, args, out: torch.zeros_like(out))
    try:
        return _controlnet_residuals(net, hint, strength, x_in, timestep, embeds, added, **union)
    finally:
        handle.remove()


def _zeros(like: list[torch.Tensor] | None, rows: int) -> list[torch.Tensor] | None:
    return None if like is None else [t.new_zeros((rows, *t.shape[1:])) for t in like]


def batched_residuals(parts: list[Residuals | None], rows: int) -> Residuals | None:
    """Per-cond residuals (each of `rows` items) joined along the batch, zeros where a cond lacks a kind."""
    present = [p for p in parts if p is not None]
    if not present:
        return None
    down = next((p.down for p in present if p.down is not None), None)
    mid = next((p.mid for p in present if p.mid is not None), None)
    intrablock = next((p.intrablock for p in present if p.intrablock is not None), None)

    def joined(pick, like):
        if like is None:
            return None
        filled = [pick(p) if p is not None and pick(p) is not None else _zeros(like, rows) for p in parts]
        return [torch.cat([f[i] for f in filled]) for i in range(len(like))]

    mids = joined(lambda p: None if p.mid is None else [p.mid], None if mid is None else [mid])
    return Residuals(joined(lambda p: p.down, down), None if mids is None else mids[0],
                     joined(lambda p: p.intrablock, intrablock))
