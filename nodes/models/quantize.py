"""`precision=int8`: the UNet's convolutions and linears computed in int8 on the CPU, opt-in and approximate.

The UNet keeps its fp32 weights (the masters that LoRAs and merges patch); while it samples, each large
Conv2d and Linear computes from an int8 copy of its current weight instead. Weights are quantized per
output channel (symmetric, int8) and activations per call (one scale for the tensor, uint8), the
"dynamic" scheme: no calibration data is needed, and any image size works. Convolutions run on oneDNN's
int8 kernels, linears on FBGEMM's (both use VNNI where the CPU has it). The packed copies are made after
the weight patches (LoRAs, merges) are applied and cached per layer and patch set, so a LoRA'd run
quantizes its patched layers anew and an unpatched model reuses its copies run after run. Speed and
PSNR against fp32: bench/int8.py and bench/RESULTS.md. Where `compile` is on or auto, the UNet samples on
its quantized OpenVINO graph instead (nodes.models.quantized_graph, faster still), and these layers serve
the run that calibrates it and the calls the graph cannot express.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator

import torch

from engine.device_facts import read_cpu_facts

# The first and last convolutions (4 latent channels) and tiny layers stay fp32: they cost nothing and
# carry the latent itself, where rounding shows most.
MIN_CHANNELS = 16


@lru_cache(maxsize=1)
def linear_activation_bits() -> int:
    """8 where FBGEMM multiplies with AVX512-VNNI (32-bit sums); elsewhere its 16-bit pair sums saturate
    with full-range activations, and 7 bits are safe (PyTorch's own default). Measured on the SD1.5 layout
    at width 64 (random weights): 8 bits raise the UNet output's SNR against fp32 from 22 to 25 dB."""
    return 8 if read_cpu_facts().features().get("avx512_vnni") else 7


_QUANTIZED_TENSOR_WARNING = "torch.quantize_per_tensor, torch.quantize_per_channel"


def int8_kernels_available() -> bool:
    """Whether this torch build has the CPU int8 kernels `precision=int8` needs."""
    return all(hasattr(ns, op) for ns, op in ((torch.ops.onednn, "qconv2d_pointwise"),
                                               (torch.ops.quantized, "linear_dynamic")))


def _channel_scales(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-channel scales: the largest |w| of each channel maps to 127."""
    amax = weight.detach().reshape(weight.shape[0], -1).abs().amax(dim=1).float()
    return torch.clamp(amax / 127.0, min=1e-12)


def _int8_weight(weight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return torch.round(weight.detach().float() / scales.reshape(shape)).clamp_(-127, 127).to(torch.int8)


def _quantized_activation(x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """`x` as uint8 with one affine scale over its range (0 included, so zero stays exact)."""
    low, high = torch.aminmax(x)
    low_f, high_f = min(float(low), 0.0), max(float(high), 0.0)
    scale = max((high_f - low_f) / 255.0, 1e-8)
    zero_point = min(255, max(0, round(-low_f / scale)))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_QUANTIZED_TENSOR_WARNING)
        return torch.quantize_per_tensor(x, scale, zero_point, torch.quint8).int_repr(), scale, zero_point


def _conv_forward(conv: torch.nn.Conv2d) -> Callable[[torch.Tensor], torch.Tensor]:
    """The int8 forward of `conv` at its current weight (oneDNN's qconv with fp32 output)."""
    scales = _channel_scales(conv.weight)
    weight = _int8_weight(conv.weight, scales).contiguous(memory_format=torch.channels_last)
    stride, padding, dilation = list(conv.stride), list(conv.padding), list(conv.dilation)
    packed = torch.ops.onednn.qconv_prepack(weight, scales, 1.0, 0, stride, padding, dilation, conv.groups, None)
    zero_points = torch.zeros(scales.shape[0], dtype=torch.int64)
    bias = None if conv.bias is None else conv.bias.detach().float()

    def forward(x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        qx, scale, zero_point = _quantized_activation(x.float())
        out = torch.ops.onednn.qconv2d_pointwise(qx, scale, zero_point, packed, scales, zero_points, bias, stride,
                                                 padding, dilation, conv.groups, 1.0, 0, torch.float32, "none",
                                                 [], "")
        return out.to(dtype)

    return forward


def _linear_forward(linear: torch.nn.Linear) -> Callable[[torch.Tensor], torch.Tensor]:
    """The int8 forward of `linear` at its current weight (FBGEMM's dynamic linear)."""
    scales = _channel_scales(linear.weight)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_QUANTIZED_TENSOR_WARNING)
        qweight = torch.quantize_per_channel(linear.weight.detach().float(), scales.double(),
                                             torch.zeros_like(scales, dtype=torch.int64), 0, torch.qint8)
    bias = None if linear.bias is None else linear.bias.detach().float()
    packed = torch.ops.quantized.linear_prepack(qweight, bias)
    reduce_range = linear_activation_bits() == 7

    def forward(x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        return torch.ops.quantized.linear_dynamic(x.float().contiguous(), packed, reduce_range).to(dtype)

    return forward


def quantizable(module: torch.nn.Module) -> bool:
    """The layers computed in int8: plain 2-D convolutions and linears with at least MIN_CHANNELS each way."""
    if isinstance(module, torch.nn.Linear):
        return min(module.in_features, module.out_features) >= MIN_CHANNELS
    if isinstance(module, torch.nn.Conv2d):
        return (module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)
                and min(module.in_channels, module.out_channels) >= MIN_CHANNELS)
    return False


class Int8Weights:
    """The int8 forwards of one loaded UNet's layers, made on first use.

    Shared by every handle made from the same loaded model (LoRA'd ones included). A layer that weight
    patches change is quantized from its patched weight, and that copy is kept only for the last set of
    patches it was made under: a changed LoRA or strength re-quantizes, an unpatched run reuses the
    unpatched copy. (A patch replaces the tensor, not the parameter, so the patches themselves are the key.)
    """

    def __init__(self) -> None:
        self._plain: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        self._patched: dict[str, tuple[tuple, Callable[[torch.Tensor], torch.Tensor]]] = {}

    def forward_for(self, name: str, module: torch.nn.Module, patches: tuple) -> Callable[[torch.Tensor], torch.Tensor]:
        """The int8 forward of the layer `name` under `patches` (those that change its weight, in order)."""
        if not patches:
            forward = self._plain.get(name)
            if forward is None:
                forward = self._plain[name] = self._quantized(module)
            return forward
        cached = self._patched.get(name)
        if cached is not None and len(cached[0]) == len(patches) and all(
                a is b for a, b in zip(cached[0], patches)):
            return cached[1]
        forward = self._quantized(module)
        self._patched[name] = (patches, forward)
        return forward

    @staticmethod
    def _quantized(module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        with torch.no_grad():
            if isinstance(module, torch.nn.Conv2d):
                return _conv_forward(module)
            assert isinstance(module, torch.nn.Linear)
            return _linear_forward(module)

    def __len__(self) -> int:
        return len(self._plain) + len(self._patched)


def _on_first_call(weights: Int8Weights, name: str, module: torch.nn.Module,
                   patches: tuple) -> Callable[[torch.Tensor], torch.Tensor]:
    """The layer's int8 forward, its weight quantized when first called: a run whose UNet calls all go to
    the compiled int8 graph (nodes.models.compiled) never pays for these copies."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        return weights.forward_for(name, module, patches)(x)

    forward.int8 = True  # type: ignore[attr-defined]
    return forward


@contextmanager
def int8_forwards_lifted(unet: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`unet` computing in fp32 for the duration of the block: the int8 forwards `int8_forwards` installed
    are taken off and put back afterwards (tracing and checking a graph need the fp32 module)."""
    lifted = [(module, module.__dict__["forward"]) for module in unet.modules()
              if getattr(module.__dict__.get("forward"), "int8", False)]
    try:
        for module, _ in lifted:
            del module.forward
        yield unet
    finally:
        for module, forward in lifted:
            module.forward = forward


@contextmanager
def int8_forwards(unet: torch.nn.Module, weights: Int8Weights | None,
                  patches: Iterable[Any] = ()) -> Iterator[torch.nn.Module]:
    """`unet`, its weight `patches` already applied, with its quantizable layers computing in int8 for the
    duration of the block (nothing when `weights` is None); their own forwards are put back afterwards."""
    if weights is None:
        yield unet
        return
    patches = [p for p in patches if p.changes_weights]
    replaced: list[tuple[torch.nn.Module, Any]] = []
    try:
        for name, module in unet.named_modules():
            if quantizable(module):
                weight_name = f"{name}.weight"
                touching = tuple(p for p in patches if weight_name in p.layers or f"{name}.bias" in p.layers)
                replaced.append((module, module.__dict__.get("forward")))
                module.forward = _on_first_call(weights, name, module, touching)
        yield unet
    finally:
        for module, own in replaced:
            if own is None:
                del module.forward
            else:
                module.forward = own
