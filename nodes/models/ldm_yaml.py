"""What CheckpointLoader takes from an original LDM config (`v1-inference.yaml`, `v2-inference-v.yaml`,
`sd_xl_refiner.yaml`, ...): the prediction type and the latent scale factor. Every architectural
number is read from the checkpoint's own tensor shapes instead, so a config that disagrees with
the weights cannot build a model that does not fit them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class LdmConfig:
    """`prediction_type`: "v_prediction" or "epsilon"; `scale_factor`: None when the file sets none."""

    prediction_type: str
    scale_factor: float | None


def read_ldm_config(path: Path) -> LdmConfig:
    """The settings of `model.params` in an LDM yaml (`parameterization: v` means v-prediction)."""
    with open(path, encoding="utf-8") as f:
        document = yaml.safe_load(f) or {}
    model = document.get("model") if isinstance(document, dict) else None
    params = model.get("params") if isinstance(model, dict) else None
    if not isinstance(params, dict):
        raise ValueError(f"{path.name}: no `model.params` mapping; is this an original LDM model config?")
    scale = params.get("scale_factor")
    return LdmConfig(prediction_type="v_prediction" if params.get("parameterization") == "v" else "epsilon",
                     scale_factor=float(scale) if scale is not None else None)
