"""Textual-inversion embeddings: finding `embedding:NAME` files and reading their vectors.

Files live in `models/embeddings/` (and its subfolders, searched like ComfyUI does), named
`NAME`, or `NAME` plus one of the embeddings' extensions in `engine.paths.MODEL_KINDS` (tried in
that order, `.safetensors` first). Formats understood:
- A1111 `.pt`: `{"string_to_param": {"*": tensor[n, D]}, ...}`;
- A1111 `.safetensors`: `{"emb_params": tensor[n, D]}` (any single-tensor file, in fact);
- SDXL: `{"clip_l": tensor[n, 768], "clip_g": tensor[n, 1280]}`, each encoder taking its own key;
- a list of dicts of tensors (an old format): the tensors of the encoder's width, concatenated;
- embeddings bundled in a LoRA file: `bundle_emb.NAME.string_to_param.*` or `bundle_emb.NAME.clip_l`.
Pickled files are read with `torch.load(weights_only=True)`, so no code in them ever runs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable

import torch

from engine.paths import MODEL_KINDS, SAFETENSORS_SUFFIXES, UnsafePathError, contained

log = logging.getLogger(__name__)


def _search_dirs(roots: Iterable[Path]) -> list[Path]:
    """Each root, then its subfolders (sorted, symlinks followed): ComfyUI finds an embedding
    anywhere below the embeddings folder by its bare name."""
    dirs: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        dirs.append(root)
        for folder, subdirs, _ in os.walk(root, followlinks=True):
            subdirs.sort()
            dirs.extend(Path(folder) / d for d in subdirs)
    return dirs


def find_embedding_file(name: str, dirs: Iterable[Path]) -> Path | None:
    """The file `name` refers to: the exact name first, then with each known extension added.
    Names that would leave a folder (`..`, absolute paths) find nothing."""
    for folder in dirs:
        try:
            exact = contained(folder, name)
        except UnsafePathError:
            continue
        if exact.is_file():
            return exact
        for ext in MODEL_KINDS["embeddings"].extensions:
            try:
                candidate = contained(folder, name + ext)
            except UnsafePathError:
                continue
            if candidate.is_file():
                return candidate
    return None


def _read_file(path: Path) -> Any:
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def _concat_matching(tensors: Iterable[Any]) -> torch.Tensor | None:
    found = [t for t in tensors if torch.is_tensor(t)]
    return torch.cat([t.reshape(-1, t.shape[-1]) for t in found]) if found else None


def vectors_from_contents(contents: Any, *, key: str = "clip_l", width: int = 768) -> torch.Tensor | None:
    """The vectors an embedding file's contents hold for the encoder whose input key is `key`
    (`clip_l`, `clip_g`) and width is `width`, as a float32 tensor [n, width'] (the width is
    checked later, where a mismatch is reported), or None when there are none."""
    vectors: Any = None
    if torch.is_tensor(contents):
        vectors = contents
    elif isinstance(contents, list):
        vectors = _concat_matching(t for item in contents if isinstance(item, dict) for t in item.values()
                                   if torch.is_tensor(t) and t.shape[-1] == width)
    elif isinstance(contents, dict):
        if isinstance(contents.get("string_to_param"), dict) and contents["string_to_param"]:
            vectors = next(iter(contents["string_to_param"].values()))
        elif key in contents:
            vectors = contents[key]
        else:
            keys = [k for k in contents if isinstance(k, str) and k.startswith("bundle_emb.")]
            vectors = _concat_matching(contents[k] for k in keys if ".string_to_param." in k)
            if vectors is None:
                vectors = _concat_matching(contents[k] for k in keys if k.endswith("." + key))
            if vectors is None and contents:
                vectors = next(iter(contents.values()))
    if not torch.is_tensor(vectors) or vectors.numel() == 0:
        return None
    return vectors.detach().reshape(-1, vectors.shape[-1]).to(dtype=torch.float32, device="cpu")


class EmbeddingLibrary:
    """The embeddings one text encoder can use: looked up by name, read once, then remembered.

    One library per encoder and prompt (or per graph run): `key` and `width` pick the vectors
    for that encoder out of files that hold several.
    """

    def __init__(self, dirs: str | Path | Iterable[str | Path], *, key: str = "clip_l", width: int = 768) -> None:
        roots = [dirs] if isinstance(dirs, (str, Path)) else list(dirs)
        self.roots = [Path(r) for r in roots]
        self.key = key
        self.width = width
        self._dirs: list[Path] | None = None
        self._loaded: dict[str, torch.Tensor | None] = {}

    def _search(self) -> list[Path]:
        if self._dirs is None:
            self._dirs = _search_dirs(self.roots)
        return self._dirs

    def vectors(self, name: str) -> torch.Tensor | None:
        """The vectors [n, D] of embedding `name`, or None when there is no such readable file."""
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        return self._loaded[name]

    def _load(self, name: str) -> torch.Tensor | None:
        if not name:
            return None
        path = find_embedding_file(name, self._search())
        if path is None:
            return None
        try:
            return vectors_from_contents(_read_file(path), key=self.key, width=self.width)
        except Exception as exc:  # a damaged or foreign file is reported, never fatal to the prompt
            log.warning("could not read embedding %s (%s): %s", name, path, exc)
            return None


__all__ = ["EmbeddingLibrary", "find_embedding_file", "vectors_from_contents"]
