"""Where and in which precision models run: the `device` and `precision` run settings.

`precision` is fp32, bf16, fp16, int8 or auto (the CLI flag, the server option, or a workflow's own
`extra_data.settings`). auto means: on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX),
bf16, about twice as fast as fp32 with half the memory; on other CPUs, fp32; on CUDA and MPS, fp16.
int8 is opt-in and approximate, CPU only: fp32 weights, the UNet sampling in int8, on its OpenVINO graph
quantized by NNCF where `compile` allows (nodes.models.quantized_graph), else with its convolutions and
linears computed in int8 eager (nodes.models.quantize).
On the CPU, convolution weights are kept channels_last (NHWC), the layout oneDNN computes in, except the
UNet's at fp32 (and int8, whose weights are fp32): plain there, measured as fast (bench/RESULTS.md), and what the
compiled graph takes without copying them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import torch

from engine.config import PRECISIONS

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}
# oneDNN's ISA cap (https://uxlfoundation.github.io/oneDNN/dev_guide_cpu_dispatcher_control.html): the
# values below AVX512_CORE_BF16, where torch's bf16 convolutions and matrix products are emulated.
ISA_CAP_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
_ISA_CAPS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                                    "AVX512_CORE_VNNI"})


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype
    int8: bool = False  # the UNet samples with int8 convolutions and linears (weights stay `dtype`)

    @property
    def precision(self) -> str:
        if self.int8:
            return "int8"
        return next(name for name, dtype in _DTYPES.items() if dtype == self.dtype)

    @property
    def memory_format(self) -> torch.memory_format:
        """The layout for convolution weights: activations follow the weights' layout."""
        return torch.channels_last if self.device.type == "cpu" else torch.contiguous_format

    @property
    def unet_memory_format(self) -> torch.memory_format:
        """The UNet's convolution layout: plain at fp32 on the CPU (as fast as channels_last there, and the
        compiled graph shares plain weights where it would copy channels_last ones), else `memory_format`."""
        if self.device.type == "cpu" and self.dtype == torch.float32:
            return torch.contiguous_format
        return self.memory_format


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def onednn_isa_cap(environ: Mapping[str, str] = os.environ) -> str | None:
    """The instruction set oneDNN is capped at by its environment variable, upper-cased; None if uncapped."""
    for name in ISA_CAP_ENV:
        if environ.get(name):
            return environ[name].strip().upper()
    return None


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether torch computes in bf16 natively here (AVX512-BF16 or AMX); elsewhere bf16 is emulated
    and slower than fp32. A oneDNN ISA cap below bf16 (ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI, what an Ice
    Lake has) rules it out; otherwise torch's CPU probes decide, or the Linux CPU flags without them."""
    if onednn_isa_cap() in _ISA_CAPS_WITHOUT_BF16:
        return False
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(probe is not None for probe in probes):
        return any(probe() for probe in probes if probe is not None)
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return False
    flags = {flag for line in cpuinfo.read_text().splitlines() if line.startswith("flags") for flag in line.split()}
    return bool(flags & _BF16_CPU_FLAGS)


def auto_precision(device: torch.device) -> str:
    """What `precision=auto` means on this device."""
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp16"


def runtime_from_settings(settings: Mapping[str, Any]) -> Runtime:
    """The device and weight dtype a loader should use; ValueError names a bad setting."""
    device = torch.device(settings.get("device") or default_device())
    precision = settings.get("precision") or "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        precision = auto_precision(device)
    if precision == "int8":
        if device.type != "cpu":
            raise ValueError(f"precision int8 runs on the CPU only (oneDNN and FBGEMM kernels), not on {device}: "
                             "use fp16 there")
        return Runtime(device, torch.float32, int8=True)
    return Runtime(device, _DTYPES[precision])
