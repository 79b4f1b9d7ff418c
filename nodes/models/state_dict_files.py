"""Reading tensors from model files: safetensors memory-mapped, pickles only with `weights_only`.

Safetensors files are mapped, not read: tensors are views of the page cache until something
writes to or converts them, so a model in the file's own dtype costs no second copy. Pickled
checkpoints (`.ckpt`, `.pt`, `.pth`, `.bin`) are opened with `torch.load(weights_only=True)`,
which refuses to run any code a file might carry; they are memory-mapped where their format allows.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# Wrappers that training scripts put around the state dict of a pickled checkpoint.
_NESTED_STATE_KEYS = ("state_dict", "model", "module")


class CheckpointFileError(ValueError):
    """A model file cannot be read: unknown kind, corrupt, or refused for safety. Names the file."""


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")


def _unwrap(obj: Any, path: Path) -> dict[str, Any]:
    import torch

    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _NESTED_STATE_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict):
        raise CheckpointFileError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _load_pickle(path: Path) -> dict[str, Any]:
    import torch

    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:  # the legacy (pre-zip) format cannot be memory-mapped
            if "mmap" not in str(exc).lower():
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear, file-naming error
        raise CheckpointFileError(
            f"{path}: cannot be read as a weights-only PyTorch checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Files that need "
            f"arbitrary code to unpickle are refused; convert it to .safetensors with a tool you trust."
        ) from exc
    return _unwrap(obj, path)


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """Every tensor in the file, by name (CPU, the file's own dtypes)."""
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001
            raise CheckpointFileError(f"{path}: not a valid safetensors file ({exc})") from exc
    if suffix in PICKLE_SUFFIXES:
        return _load_pickle(path)
    raise CheckpointFileError(
        f"{path}: unknown model file type {suffix!r} (expected one of "
        f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)} or a diffusers folder)")


def read_safetensors_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape from a safetensors header alone, without mapping any data."""
    path = Path(path)
    _check_exists(path)
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > 100_000_000:
                raise ValueError(f"header size {size} is implausible")
            header = json.loads(f.read(size))
        return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except Exception as exc:  # noqa: BLE001
        raise CheckpointFileError(f"{path}: not a valid safetensors file ({exc})") from exc
