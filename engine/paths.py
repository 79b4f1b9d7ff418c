"""Where files live: models (by kind), inputs, outputs and temp, with containment checks.

Every file name that arrives from a workflow or a request is resolved here, and nothing that
resolves outside its folder (through `..`, an absolute path or a symlink) is ever returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from engine.model_paths import ALIASES_FILE, read_model_aliases
from engine.types import ChoicesProvider

# The model files our loaders read (nodes.models.state_dict_files): `.sft` is a safetensors file
# under another name; pickles are opened weights-only. GGUF and other formats are not listed.
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class ModelKind:
    """One kind of model: its folder's name (under `models/`, and ComfyUI's name for it in
    `/models` and extra-paths files) and the file suffixes its loaders read, in lookup order.
    `also` names other folders ComfyUI reads for the kind (under `models/` and in extra-paths files)."""

    name: str
    extensions: tuple[str, ...]
    also: tuple[str, ...] = ()


# The one table of model kinds: the loaders' choices, `/models/{kind}` and `/embeddings` list
# exactly these files. `kind in MODEL_KINDS` and `list(MODEL_KINDS)` give the kinds' names.
MODEL_KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (
    ModelKind("checkpoints", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),
    ModelKind("vae", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),
    ModelKind("loras", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),
    ModelKind("embeddings", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),
    ModelKind("upscale_models", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),
    ModelKind("controlnet", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES, also=("t2i_adapter",)),
    ModelKind("clip_vision", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),
    ModelKind("style_models", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),
    ModelKind("hypernetworks", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),
    ModelKind("gligen", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),
    ModelKind("ipadapter", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),
    ModelKind("vae_approx", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),  # TAESD halves: VAELoader, previews
    ModelKind("annotators", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),  # comfyui_controlnet_aux's models
    ModelKind("latent_upscale_models", SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES),  # NNLatentUpscale's resizers
)}


def model_extensions(kind: str) -> tuple[str, ...]:
    """The file suffixes listed for `kind`: the table's, or every file for a kind it lacks
    (an extension node pack's own folder, e.g. `wildcards`)."""
    known = MODEL_KINDS.get(kind)
    return known.extensions if known is not None else ()


class UnsafePathError(ValueError):
    """A requested file name would leave the folder it must stay in."""


def contained(root: Path, name: str) -> Path:
    """`root / name`, fully resolved, or UnsafePathError when it escapes `root`."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise UnsafePathError(f"invalid file name {name!r}")
    if Path(name).is_absolute() or name.startswith(("/", "\\")):
        raise UnsafePathError(f"{name!r} is an absolute path")
    root_resolved = root.resolve()
    candidate = (root_resolved / name).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise UnsafePathError(f"{name!r} leaves the folder {root}")
    return candidate


def posix_model_name(name: str) -> str:
    """A model name saved on Windows (ComfyUI lists subfolders there as `SD1_5\\model.safetensors`)
    with `/` separators; UnsafePathError for an absolute path, a drive letter or a `..` part."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"[A-Za-z]:", posix) or ".." in posix.split("/"):
        raise UnsafePathError(f"{name!r} leaves the model folders")
    return posix


def _stays_inside(folder: Path, path: Path) -> bool:
    """Whether `path` (under `folder`) still resolves inside it: a symlink out of a model folder is
    neither listed nor loaded, so listing, validation and loading agree."""
    try:
        contained(folder, path.relative_to(folder).as_posix())
    except UnsafePathError:
        return False
    return True


@dataclass
class Paths:
    """The folders of one engine instance. `extra_model_dirs` adds folders per model kind;
    `model_aliases` (kind → requested name → file) adds to those in `models_dir/aliases.yaml`."""

    models_dir: Path = Path("models")
    input_dir: Path = Path("input")
    output_dir: Path = Path("output")
    temp_dir: Path = Path("temp")
    extra_model_dirs: dict[str, list[Path]] = field(default_factory=dict)
    model_aliases: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.models_dir = Path(self.models_dir)
        self.input_dir = Path(self.input_dir)
        self.output_dir = Path(self.output_dir)
        self.temp_dir = Path(self.temp_dir)

    def model_dirs(self, kind: str) -> list[Path]:
        """The folders searched for models of `kind`, the primary one first."""
        known = MODEL_KINDS.get(kind)
        names = (kind, *(known.also if known is not None else ()))
        return [*(self.models_dir / n for n in names), *(d for n in names for d in self.extra_model_dirs.get(n, []))]

    def list_models(self, kind: str, extensions: Iterable[str] | None = None) -> list[str]:
        """Relative names (`/` separators) of the models of `kind`, sorted and deduplicated;
        `extensions` (default: the kind's in `MODEL_KINDS`) filters the files, () lists them all.

        A folder holding `model_index.json` is one model (a diffusers folder), not its files. A file
        that is a symlink to somewhere outside the folder is left out (`model_path` refuses it).
        """
        exts = tuple(e.lower() for e in (model_extensions(kind) if extensions is None else extensions))
        names: set[str] = set()
        for folder in self.model_dirs(kind):
            if not folder.is_dir():
                continue
            bundles = {p.parent for p in folder.rglob("model_index.json")}
            for path in folder.rglob("*"):
                if path in bundles:
                    names.add(path.relative_to(folder).as_posix())
                elif path.is_file() and (not exts or path.suffix.lower() in exts) and not any(
                        b in path.parents for b in bundles) and _stays_inside(folder, path):
                    names.add(path.relative_to(folder).as_posix())
        return sorted(names)

    def aliases(self, kind: str) -> dict[str, str]:
        """Requested name → file name for `kind`, from `models_dir/aliases.yaml` and `model_aliases`
        (re-read on each call, so an edited file counts at once)."""
        from_file = read_model_aliases(self.models_dir / ALIASES_FILE).get(kind, {})
        return {**from_file, **self.model_aliases.get(kind, {})}

    def resolve_model_name(self, kind: str, name: str) -> str:
        """`name` when a folder has it, else the file its alias names (else `name` unchanged)."""
        target = self.aliases(kind).get(name)
        if target is None or any(contained(folder, name).exists() for folder in self.model_dirs(kind)):
            return name
        return target

    def model_path(self, kind: str, name: str) -> Path:
        """The file for model `name` (or its alias) of `kind`; FileNotFoundError if no folder has it."""
        resolved = self.resolve_model_name(kind, name)
        for folder in self.model_dirs(kind):
            path = contained(folder, resolved)
            if path.exists():
                return path
        via = f" (what {name!r} is an alias of)" if resolved != name else ""
        raise FileNotFoundError(f"no {kind} model named {resolved!r}{via} in "
                                f"{', '.join(map(str, self.model_dirs(kind)))}")

    def model_stamp(self, kind: str, name: str) -> str:
        """The file's size and modification time (`missing` when no folder has it): cheap, and it
        changes whenever the file is replaced or edited. Part of the cache key of a node that loads it."""
        try:
            stat = self.model_path(kind, name).stat()
        except (FileNotFoundError, UnsafePathError):
            return "missing"
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def input_path(self, name: str) -> Path:
        return contained(self.input_dir, name)

    def folder(self, kind: str) -> Path:
        """The folder for `input`, `output` or `temp` files (as ComfyUI's `type=` names them)."""
        folders = {"input": self.input_dir, "output": self.output_dir, "temp": self.temp_dir}
        if kind not in folders:
            raise UnsafePathError(f"unknown folder type {kind!r} (expected input, output or temp)")
        return folders[kind]


class ModelFiles(ChoicesProvider):
    """A combo's choices: the model files of one kind (e.g. checkpoints), asked at validation time.

    `builtin` names models the node pack can provide itself when no such file exists; they are
    offered after the user's own files, then the aliases whose target is one of those.
    """

    def __init__(self, kind: str, extensions: Iterable[str] | None = None, builtin: Iterable[str] = ()) -> None:
        self.kind = self.model_kind = kind
        self.extensions = model_extensions(kind) if extensions is None else tuple(extensions)
        self.builtin = tuple(builtin)

    def choices(self, paths: "Paths | None") -> list[str]:
        paths = paths or Paths()
        found = paths.list_models(self.kind, self.extensions)
        offered = found + [name for name in self.builtin if name not in found]
        present = set(offered)
        return offered + sorted(alias for alias, target in paths.aliases(self.kind).items()
                                if target in present and alias not in present)
