"""What the nodes would run on, for `python -m engine doctor`: the device, torch's view of the CPU,
and what the `precision` and `compile` settings (auto by default) resolve to there (nodes.models.runtime's
and nodes.models.compiled's rules)."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from nodes.models.compiled import auto_compile_choice
from nodes.models.quantize import int8_kernels_available
from nodes.models.runtime import cpu_has_native_bf16, onednn_isa_cap, runtime_from_settings


def describe_runtime(settings: Mapping[str, Any]) -> dict[str, str]:
    """Label → value lines; ValueError names a bad `device` or `precision` setting."""
    auto = runtime_from_settings({**settings, "precision": "auto"})
    chosen = runtime_from_settings(settings)
    cap = onednn_isa_cap()
    return {
        "torch": f"{torch.__version__}, {torch.get_num_threads()} threads",
        "torch sees native bf16": ("yes" if cpu_has_native_bf16() else "no")
        + (f" (oneDNN capped at {cap})" if cap else ""),
        "device": str(chosen.device),
        "precision auto": auto.precision,
        "precision used": chosen.precision,
        "precision int8": "available (opt-in, approximate: the UNet in int8)" if int8_kernels_available()
        else "not available in this torch build",
        "compile auto": auto_compile_choice(),
    }
