"""Where and in which precision models run: the `device` and `precision` run settings.

`precision` is fp32, bf16, fp16 or auto (the CLI flag, the server option, or a workflow's own
`extra_data.settings`). On the CPU, auto means fp32 for now; on CUDA, fp16; on MPS, fp16.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype

    @property
    def precision(self) -> str:
        return next(name for name, dtype in _DTYPES.items() if dtype == self.dtype)


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def runtime_from_settings(settings: Mapping[str, Any]) -> Runtime:
    """The device and weight dtype a loader should use; ValueError names a bad setting."""
    device = torch.device(settings.get("device") or default_device())
    precision = settings.get("precision") or "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        precision = "fp32" if device.type == "cpu" else "fp16"
    return Runtime(device, _DTYPES[precision])
