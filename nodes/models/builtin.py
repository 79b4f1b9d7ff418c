"""The built-in checkpoints and LoRA, so a first run works with no model installed.

`demo-shapes` is the default: a small SD1.x model trained by `tools/train_demo_model.py` to draw
coloured shapes (see `builtin/demo-shapes.md`), shipped in the package as a single-file
checkpoint and loaded like any other. The tiny random-weight SD1.x and SDXL checkpoints are
written on first use into the checkpoints folder in the real single-file layout; they only prove
the pipeline runs (tests use them). Real images need a real checkpoint in `models/checkpoints`.
The built-in LoRA is a random kohya-layout LoRA for the random SD1.x model, written into the loras folder.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from nodes.models.family import SD15, SDXL_BASE

DEMO_CHECKPOINT = "demo-shapes.safetensors"
BUILTIN_CHECKPOINT = "tiny-sd15-random.safetensors"
BUILTIN_SDXL_CHECKPOINT = "tiny-sdxl-random.safetensors"
# Built-in checkpoint name → its family (any other name asked of ensure_builtin_checkpoint is SD1.x),
# the default first: choices list real files, then these in this order.
BUILTIN_CHECKPOINTS = {DEMO_CHECKPOINT: SD15, BUILTIN_CHECKPOINT: SD15, BUILTIN_SDXL_CHECKPOINT: SDXL_BASE}
# Built-in checkpoints shipped as files in the package rather than generated.
SHIPPED_DIR = Path(__file__).resolve().parent / "builtin"
SHIPPED_CHECKPOINTS = {DEMO_CHECKPOINT: SHIPPED_DIR / DEMO_CHECKPOINT}
BUILTIN_LORA = "tiny-sd15-lora.safetensors"
BUILTIN_SEED = 20261124
log = logging.getLogger(__name__)


def ensure_builtin_checkpoint(folder: Path, name: str = BUILTIN_CHECKPOINT) -> Path:
    """The built-in checkpoint's path: the shipped file, else in `folder`, generated (deterministically,
    atomically) if absent."""
    if name in SHIPPED_CHECKPOINTS:
        return SHIPPED_CHECKPOINTS[name]
    path = folder / name
    if path.exists():
        return path
    from nodes.models.tiny import ldm_state_dict, tiny_modules

    log.warning("no checkpoint named %s: generating the built-in tiny random-weight model at %s "
                "(it only proves the pipeline; real images need a real checkpoint in models/checkpoints)",
                name, path)
    folder.mkdir(parents=True, exist_ok=True)
    family = BUILTIN_CHECKPOINTS.get(name, SD15)
    state = {k: v.contiguous() for k, v in ldm_state_dict(family, tiny_modules(family, BUILTIN_SEED)).items()}
    what = "SDXL" if family.is_sdxl else "SD1.x"
    _write_atomically(state, path, {"description": f"sdgraph built-in tiny {what} model, random weights"})
    return path


def ensure_builtin_lora(folder: Path, name: str = BUILTIN_LORA) -> Path:
    """The built-in LoRA's path in `folder` (for the built-in model), generated if absent."""
    path = folder / name
    if path.exists():
        return path
    from nodes.models.modules import build_text_encoder, build_unet
    from nodes.models.shipped_configs import text_encoder_names
    from nodes.models.tiny import tiny_configs
    from nodes.models.tiny_lora import kohya_lora

    log.warning("no LoRA named %s: generating the built-in tiny random LoRA for the built-in model at %s", name, path)
    folder.mkdir(parents=True, exist_ok=True)
    configs = tiny_configs(SD15)  # only the modules' names and shapes matter, not their weights
    encoders = [build_text_encoder(configs.text_encoders[n]) for n in text_encoder_names(configs.model_index)]
    state = kohya_lora(SD15, build_unet(configs.unet), encoders, seed=BUILTIN_SEED)
    # One metadata entry only: safetensors writes several in no fixed order, and the file must not vary.
    _write_atomically(state, path, {"description": "sdgraph built-in tiny LoRA for the built-in SD1.x model"})
    return path


def _write_atomically(state: dict, path: Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file so that no reader ever sees it half-written."""
    from safetensors.torch import save_file

    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    os.close(handle)
    try:
        save_file(state, temp, metadata=metadata)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
