"""The built-in default checkpoint, so a first run works with no model installed.

It is a tiny SD1.x-architecture checkpoint with seeded random weights, written on first use
into the checkpoints folder in the real single-file layout. It proves the whole pipeline runs;
it draws noise-like images. Real images need a real checkpoint in `models/checkpoints`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from nodes.models.family import SD15

BUILTIN_CHECKPOINT = "tiny-sd15-random.safetensors"
BUILTIN_SEED = 20261124
log = logging.getLogger(__name__)


def ensure_builtin_checkpoint(folder: Path, name: str = BUILTIN_CHECKPOINT) -> Path:
    """The built-in checkpoint's path in `folder`, generated (deterministically, atomically) if absent."""
    path = folder / name
    if path.exists():
        return path
    from safetensors.torch import save_file

    from nodes.models.tiny import ldm_state_dict, tiny_modules

    log.warning("no checkpoint named %s: generating the built-in tiny random-weight model at %s "
                "(it only proves the pipeline; real images need a real checkpoint in models/checkpoints)",
                name, path)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in ldm_state_dict(SD15, tiny_modules(SD15, BUILTIN_SEED)).items()}
    handle, temp = tempfile.mkstemp(dir=folder, suffix=".partial")
    os.close(handle)
    try:
        save_file(state, temp, metadata={"description": "sdgraph built-in tiny SD1.x model, random weights"})
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return path
