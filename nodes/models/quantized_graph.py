"""`precision=int8` through OpenVINO: the UNet's traced graph, holding this model's weights, quantized by NNCF.

The graph traced for the compiled fp32 path (nodes.models.compiled) is given the model's current weights
(LoRAs and merges applied) and quantized to int8, weights and activations, by NNCF's post-training
quantization. Activation ranges come from real calls: the first int8 run of a set of weights samples on the
eager int8 layers (nodes.models.quantize) while keeping a few of its UNet calls (from noise to the image,
its own prompts and guidance), and quantizes when it is done; later runs use the graph. The result depends on
the weights, so it is cached on disk per weights digest: a changed LoRA or strength calibrates and
quantizes anew, never reusing another model's ranges. Measured on the
full-size SD1.5 layout (bench/int8.py, bench/RESULTS.md) it computes a call in about a third of fp32 eager's
time, where the eager int8 layers (nodes.models.quantize) take about half.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from nodes.models.graph_weights import module_tensors, tensor_bytes
from nodes.models.quantize import MIN_CHANNELS

RECIPE_VERSION = 1  # part of the cache key: a graph quantized by an older recipe is not reused
CALIBRATION_CALLS = 4  # calls of the calibrating run NNCF measures activation ranges on, spread over it
# The largest latent side calibrated on where the graph serves every aligned size: activation ranges barely
# depend on the size, and NNCF's passes at 512 px took 6 minutes on the full-size SD1.5 layout (256 px: 2).
CALIBRATION_SIDE = 32
# Parts of a graph op's name (diffusers' module names, kept by the converter) of the timestep embedding's layers.
TIMESTEP_LAYERS = (".time_emb_proj/", ".time_embedding.", ".add_embedding.")


def nncf_available() -> bool:
    return importlib.util.find_spec("nncf") is not None


def nncf_version() -> str:
    import nncf

    return str(nncf.__version__)


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of every tensor's name, shape, type and bytes: what the quantized graph was made from.
    SHA-256 over the tensors in two threads (hashlib lets go of the GIL): about a second for SD1.5's UNet."""

    def digest(item: tuple[str, torch.Tensor]) -> bytes:
        name, tensor = item
        header = f"{name}:{list(tensor.shape)}:{tensor.dtype}".encode()
        return hashlib.sha256(header + hashlib.sha256(tensor_bytes(tensor).data).digest()).digest()

    items = sorted(module_tensors(module).items())
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(digest, items))
    return hashlib.sha256(b"".join(parts)).hexdigest()[:32]


def calibration_side(side: int, multiple: int | None) -> int:
    """The latent side to calibrate at: `side` itself for a graph traced for one shape (`multiple` None),
    else at most CALIBRATION_SIDE, kept a multiple of `multiple` (the UNet's total upsampling)."""
    if multiple is None or side <= CALIBRATION_SIDE:
        return side
    return max(multiple, CALIBRATION_SIDE // multiple * multiple)


def calibration_call(inputs: tuple[torch.Tensor, ...], multiple: int | None) -> list[np.ndarray]:
    """One UNet call (sample, timesteps, context) as kept for calibration: copied, the sample subsampled to
    `calibration_side` (nearest, which keeps its variance)."""
    sample, timesteps, context = inputs
    size = tuple(calibration_side(side, multiple) for side in sample.shape[-2:])
    if size != tuple(sample.shape[-2:]):
        sample = torch.nn.functional.interpolate(sample, size=size, mode="nearest")
    return [sample.numpy().copy(), timesteps.numpy().copy(), context.numpy().copy()]


def spread(calls: list, count: int = CALIBRATION_CALLS) -> list:
    """At most `count` of `calls`, the first and last included, evenly spaced: from noise to the image."""
    if len(calls) <= count:
        return list(calls)
    return [calls[round(i * (len(calls) - 1) / (count - 1))] for i in range(count)]


def fp32_layers(graph: Any) -> list[str]:
    """The convolutions and matrix products that stay fp32: those with a constant weight under
    MIN_CHANNELS either way (the first and last convolutions carry the latent itself, where rounding shows
    most), and the timestep embedding's (one row per image, so they cost nothing, and one static range
    would have to serve every timestep). Measured on the demo model: with them quantized, 12 of 14 prompts
    drawn as asked with dpmpp_2m; kept fp32, 13 or 14 with each sampler (tests/nodes/test_precision_int8.py)."""
    names = []
    for op in graph.get_ops():
        if op.get_type_name() not in ("Convolution", "MatMul") or op.get_input_size() < 2:
            continue
        if any(part in op.get_friendly_name() for part in TIMESTEP_LAYERS):
            names.append(op.get_friendly_name())
            continue
        shape = op.input(1).get_partial_shape()
        if shape.is_static and len(shape) >= 2 and min(shape[0].get_length(), shape[1].get_length()) < MIN_CHANNELS:
            names.append(op.get_friendly_name())
    return names


def quantized(graph: Any, calibration: list[list[np.ndarray]]) -> Any:
    """`graph` (an OpenVINO model holding the real weights) with its convolutions and matrix products in
    int8, but for `fp32_layers`. SmoothQuant is off (on the demo model it cost prompts: 11-12 of 14 drawn),
    and so is bias correction (no gain measured there, and it adds passes over the calibration calls)."""
    import nncf

    nncf.set_log_level(logging.ERROR)  # its notes and progress bars go to stdout, where the CLI prints results
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(graph, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                             subset_size=len(calibration),
                             ignored_scope=nncf.IgnoredScope(names=fp32_layers(graph), validate=False),
                             advanced_parameters=nncf.AdvancedQuantizationParameters(
                                 disable_bias_correction=True,
                                 smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1, convolution=-1)))
