"""The model configs shipped with the project, in diffusers' folder layout, one folder per family.

They are the configs of the reference releases (SD1.5, SD2.1, SDXL base and refiner 1.0), so that no config
ever has to come from a model hub. The `tokenizer*/` folders hold only the tokenizer settings
(which padding token); the vocabulary itself is shared, see `clip_tokenizer`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodes.models.family import CheckpointFamily

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"


def read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclass
class FamilyConfigs:
    """The configs of one pipeline: component name → config dict, as in a diffusers folder.

    `text_encoders` and `tokenizers` list component names in pipeline order
    (`text_encoder`, then `text_encoder_2` for SDXL).
    """

    model_index: dict[str, Any]
    unet: dict[str, Any]
    vae: dict[str, Any]
    scheduler: dict[str, Any]
    text_encoders: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokenizers: dict[str, dict[str, Any]] = field(default_factory=dict)


def text_encoder_names(model_index: dict[str, Any]) -> list[str]:
    """`text_encoder`, `text_encoder_2`, … as far as the pipeline has them (the SDXL refiner's
    `text_encoder` is `[null, null]`: absent)."""
    return sorted((k for k, v in model_index.items() if k.startswith("text_encoder") and v and any(v)),
                  key=lambda k: (len(k), k))


def read_pipeline_configs(folder: Path) -> FamilyConfigs:
    """The configs of a diffusers-layout folder (shipped or a user's diffusers model)."""
    model_index = read_json(folder / "model_index.json")
    encoders = {name: read_json(folder / name / "config.json") for name in text_encoder_names(model_index)}
    tokenizers = {}
    for name in encoders:
        tok_name = name.replace("text_encoder", "tokenizer")
        tok_file = folder / tok_name / "tokenizer_config.json"
        tokenizers[tok_name] = read_json(tok_file) if tok_file.is_file() else {}
    return FamilyConfigs(
        model_index=model_index,
        unet=read_json(folder / "unet" / "config.json"),
        vae=read_json(folder / "vae" / "config.json"),
        scheduler=read_json(folder / "scheduler" / "scheduler_config.json"),
        text_encoders=encoders,
        tokenizers=tokenizers,
    )


def shipped_configs(family: CheckpointFamily) -> FamilyConfigs:
    """Fresh copies of the shipped configs of `family`, its prediction type applied to the scheduler."""
    configs = read_pipeline_configs(CONFIGS_DIR / family.config_dir)
    configs.scheduler["prediction_type"] = family.prediction_type
    return configs
