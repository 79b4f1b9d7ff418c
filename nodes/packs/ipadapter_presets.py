"""Which files a preset of IPAdapterUnifiedLoader means: the name patterns of cubiq's pack (its
utils.get_clipvision_file / get_ipadapter_file), searched in models/clip_vision and models/ipadapter."""

from __future__ import annotations

import re

from engine.paths import Paths


def clip_vision_pattern(preset: str) -> str:
    if preset.lower().startswith("vit-g"):
        return r"(ViT.bigG.14.*39B.b160k|ipadapter.*sdxl|sdxl.*model)\.(bin|safetensors)"
    return r"(ViT.H.14.*s32B.b79K|ipadapter.*sd15|sd1.?5.*model)\.(bin|safetensors)"


def ipadapter_pattern(preset: str, is_sdxl: bool, files: list[str]) -> str:
    """The name pattern the pack looks for; presets that do not exist for the family are errors."""
    p = preset.lower()

    def found(pattern: str) -> bool:
        return any(re.search(pattern, f, re.IGNORECASE) for f in files)

    if p.startswith("light"):
        if is_sdxl:
            raise ValueError("light model is not supported for SDXL")
        v11 = r"sd15.light.v11\.(safetensors|bin)$"
        return v11 if found(v11) else r"sd15.light\.(safetensors|bin)$"
    if p.startswith("standard"):
        return r"ip.adapter.sdxl.vit.h\.(safetensors|bin)$" if is_sdxl else r"ip.adapter.sd15\.(safetensors|bin)$"
    if p.startswith("vit-g"):
        return r"ip.adapter.sdxl\.(safetensors|bin)$" if is_sdxl else r"sd15.vit.g\.(safetensors|bin)$"
    if p.startswith("plus ("):
        return r"plus.sdxl.vit.h\.(safetensors|bin)$" if is_sdxl else r"ip.adapter.plus.sd15\.(safetensors|bin)$"
    if p.startswith("plus face"):
        return r"plus.face.sdxl.vit.h\.(safetensors|bin)$" if is_sdxl else r"plus.face.sd15\.(safetensors|bin)$"
    if p.startswith("full"):
        if is_sdxl:
            raise ValueError("full face model is not supported for SDXL")
        return r"full.face.sd15\.(safetensors|bin)$"
    raise ValueError(f"invalid type '{preset}'")


def first_match(pattern: str, files: list[str]) -> str | None:
    return next((f for f in files if re.search(pattern, f, re.IGNORECASE)), None)


def preset_files(paths: Paths, preset: str, is_sdxl: bool) -> tuple[str, str]:
    """(clip_vision file, ipadapter file) for a preset, found by the pack's name patterns."""
    vision = first_match(clip_vision_pattern(preset), paths.list_models("clip_vision"))
    if vision is None:
        raise FileNotFoundError(f"ClipVision model not found for preset {preset!r} in models/clip_vision")
    adapters = paths.list_models("ipadapter")
    adapter = first_match(ipadapter_pattern(preset, is_sdxl, adapters), adapters)
    if adapter is None:
        raise FileNotFoundError(f"IPAdapter model not found for preset {preset!r} in models/ipadapter")
    return vision, adapter
