"""Reading tensors from model files: safetensors memory-mapped, pickles only with `weights_only`.

Safetensors files are mapped, not read: tensors are views of the page cache until something
writes to or converts them, so a model in the file's own dtype costs no second copy. A loader
that converts (fp16 file → fp32 model) releases each tensor's pages once its copy is made
(`StateDictFile.release`), so the file's pages and the converted model are never resident
together. Pickled checkpoints (`.ckpt`, `.pt`, `.pth`, `.bin`) are opened with
`torch.load(weights_only=True)`, which refuses to run any code a file might carry; they are
memory-mapped where their format allows.
"""

from __future__ import annotations

import json
import mmap
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.paths import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES

# Linux's MADV_DONTNEED on a private file mapping drops pages that read back from the file; other
# systems' advice of that name promises less, so there a loaded file's pages stay until it is unmapped.
_DROP_PAGES = sys.platform.startswith("linux") and hasattr(mmap, "MADV_DONTNEED")
# Wrappers that training scripts put around the state dict of a pickled checkpoint (BasicSR's, as in
# the Real-ESRGAN releases: `params_ema`, preferred to `params`; TencentARC's T2I-Adapters: `adapter`).
_NESTED_STATE_KEYS = ("state_dict", "model", "module", "params_ema", "params", "adapter")


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


def _no_release(tensor: Any) -> None:
    return None


@dataclass
class StateDictFile:
    """A model file's tensors by name, and `release(tensor)`: called once a tensor has been copied
    (cast, moved, relaid) and the view is no longer read, it hands the pages under it back."""

    tensors: dict[str, Any]
    release: Callable[[Any], None] = field(default=_no_release)


def open_state_dict(path: str | Path) -> StateDictFile:
    """Every tensor in the file (CPU, the file's own dtypes), with a page release where the file is mapped."""
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        mapped = _MappedSafetensors(path)
        return StateDictFile(mapped.tensors(), mapped.release)
    if suffix in PICKLE_SUFFIXES:
        return StateDictFile(_load_pickle(path))
    raise CheckpointFileError(
        f"{path}: unknown model file type {suffix!r} (expected one of "
        f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)} or a diffusers folder)")


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """Every tensor in the file, by name (CPU, the file's own dtypes)."""
    return open_state_dict(path).tensors


def _read_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(where the tensor data starts, the JSON header) of a safetensors file."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > 100_000_000:
                raise ValueError(f"header size {size} is implausible")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        return 8 + size, header
    except Exception as exc:  # noqa: BLE001
        raise CheckpointFileError(f"{path}: not a valid safetensors file ({exc})") from exc


def _safetensors_dtypes() -> dict[str, Any]:
    import torch

    names = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "I32": "int32",
             "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16", "BF16": "bfloat16",
             "F32": "float32", "F64": "float64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
    return {code: getattr(torch, name) for code, name in names.items() if hasattr(torch, name)}


class _MappedSafetensors:
    """A safetensors file mapped copy-on-write (as safetensors itself maps it), one view per tensor.

    Owning the mapping is what lets `release` work: pages a loader has finished with are dropped
    from this process (MADV_DONTNEED; Linux) and stay in the page cache. Nothing ever writes to the
    views, so a dropped page reads back from the file unchanged if anything touches it again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data_start, self.header = _read_header(path)
        with open(path, "rb") as f:
            try:
                self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            except ValueError as exc:  # an empty file
                raise CheckpointFileError(f"{path}: not a valid safetensors file ({exc})") from exc
        import torch

        self.base = torch.frombuffer(self.map, dtype=torch.uint8, count=1).data_ptr()

    def tensors(self) -> dict[str, Any]:
        import torch

        dtypes = _safetensors_dtypes()
        out = {}
        for name, info in self.header.items():
            if name == "__metadata__":
                continue
            try:
                code, shape = info["dtype"], tuple(int(n) for n in info["shape"])
                begin, end = (self.data_start + int(o) for o in info["data_offsets"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointFileError(
                    f"{self.path}: not a valid safetensors file (tensor {name!r}: {exc!r})") from None
            if code not in dtypes:
                raise CheckpointFileError(f"{self.path}: tensor {name!r} has dtype {code}, which torch "
                                          f"{torch.__version__} cannot hold")
            dtype = dtypes[code]
            count = end - begin
            itemsize = torch.empty((), dtype=dtype).element_size()
            numel = 1
            for n in shape:
                numel *= n
            if count != numel * itemsize or begin < self.data_start or end > len(self.map):
                raise CheckpointFileError(
                    f"{self.path}: not a valid safetensors file (tensor {name!r}: its {count} bytes at "
                    f"{begin}..{end} do not hold {info['dtype']} {list(shape)} inside the file)")
            if numel == 0:
                out[name] = torch.empty(shape, dtype=dtype)
            elif begin % itemsize:  # unaligned (no writer we know of does this): a copy, not a view
                out[name] = torch.frombuffer(bytearray(self.map[begin:end]), dtype=dtype).reshape(shape)
            else:
                out[name] = torch.frombuffer(self.map, dtype=dtype, offset=begin, count=numel).reshape(shape)
        return out

    def release(self, tensor: Any) -> None:
        """Drop the pages under `tensor` (a view of this file) from the process; others are ignored."""
        start = tensor.data_ptr() - self.base
        if not _DROP_PAGES or tensor.numel() == 0 or not 0 <= start < len(self.map):
            return
        span = 1 + sum((n - 1) * abs(s) for n, s in zip(tensor.shape, tensor.stride()))
        page = mmap.PAGESIZE
        low = start // page * page
        high = min(len(self.map), -(-(start + span * tensor.element_size()) // page) * page)
        self.map.madvise(mmap.MADV_DONTNEED, low, high - low)
