"""Model folders beyond `models/`, and names that workflows ask for mapped onto files you have.

Two user-written YAML files:

- An extra-paths file in ComfyUI's `extra_model_paths.yaml` format, to reuse the model folders
  of an existing ComfyUI or Automatic1111 install. Each top-level section names one install:
  `base_path` (`~` and `$VARS` expanded; relative to the YAML file's folder), then one key per
  model kind whose value is a folder relative to `base_path`, or several folders one per line::

      a1111:
        base_path: ~/stable-diffusion-webui
        checkpoints: models/Stable-diffusion
        vae: models/VAE
        loras: |
          models/Lora
          models/LyCORIS
        embeddings: embeddings

  Kinds we do not use (`upscale_models`, `controlnet`, ...) are accepted and kept, so one file
  serves both programs. `is_default` is accepted; our own `models/` folders are still searched first.

- `models/aliases.yaml`: per kind, the file name a workflow asks for → the file to use instead,
  so that shared workflows run unedited on the models you have::

      checkpoints:
        v1-5-pruned-emaonly-fp16.safetensors: dreamshaper_8.safetensors
        sd_xl_base_1.0.safetensors: tiny-sdxl-random.safetensors
      vae:
        vae-ft-mse-840000-ema-pruned.safetensors: my-vae.safetensors

  A file really present under the requested name always wins over its alias. A target is a name
  inside that kind's folders (or a built-in model name), never an absolute path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ALIASES_FILE = "aliases.yaml"
# Section keys of an extra-paths file that are settings, not model kinds.
_SECTION_SETTINGS = ("base_path", "is_default")


class ModelPathsError(ValueError):
    """An extra-paths or aliases file that cannot be used as written; says which file and entry."""


def _read_yaml(file: Path) -> Any:
    import yaml

    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelPathsError(f"cannot read {file}: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelPathsError(f"{file} is not valid YAML: {exc}") from exc


def _read_mapping(file: Path, expected: str) -> dict:
    """The YAML file's top-level mapping ({} for an empty file), or an error saying what was expected."""
    data = _read_yaml(file)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ModelPathsError(f"{file}: expected {expected}, got {type(data).__name__}")
    return data


def _expand(text: str) -> Path:
    return Path(os.path.expanduser(os.path.expandvars(text)))


def read_extra_model_paths(file: str | Path) -> dict[str, list[Path]]:
    """Kind → the folders an extra-paths YAML file adds for it, in the file's order, deduplicated."""
    file = Path(file)
    data = _read_mapping(file, "sections (name: {base_path: ..., checkpoints: ...})")
    here = file.resolve().parent
    dirs: dict[str, list[Path]] = {}
    for section, entries in data.items():
        if entries is None:
            continue
        if not isinstance(entries, dict):
            raise ModelPathsError(f"{file}: section {section!r} must map kinds to folders, got {entries!r}")
        base = entries.get("base_path")
        if base is not None and not isinstance(base, str):
            raise ModelPathsError(f"{file}: {section}.base_path must be a folder name, got {base!r}")
        root = here / _expand(base) if base else here  # an absolute base_path replaces `here`
        for kind, value in entries.items():
            if kind in _SECTION_SETTINGS or value is None:
                continue
            if not isinstance(value, str):
                raise ModelPathsError(f"{file}: {section}.{kind} must be a folder, or several one per line; "
                                      f"got {value!r}")
            for line in value.splitlines():
                if line.strip():
                    folder = root / _expand(line.strip())
                    if folder not in dirs.setdefault(str(kind), []):
                        dirs[str(kind)].append(folder)
    return dirs


def read_model_aliases(file: str | Path) -> dict[str, dict[str, str]]:
    """Kind → {requested name: file name} from an aliases YAML file; {} when there is no such file."""
    file = Path(file)
    if not file.is_file():
        return {}
    data = _read_mapping(file, "kinds (checkpoints: {requested name: your file})")
    aliases: dict[str, dict[str, str]] = {}
    for kind, mapping in data.items():
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            raise ModelPathsError(f"{file}: {kind!r} must map requested names to your files, got {mapping!r}")
        for requested, target in mapping.items():
            if not isinstance(requested, str) or not isinstance(target, str) or not target:
                raise ModelPathsError(f"{file}: {kind}: alias {requested!r}: {target!r} must map a file name "
                                      "to a file name")
            if Path(target).is_absolute():
                raise ModelPathsError(f"{file}: {kind}: alias {requested!r} → {target!r}: a target names a file "
                                      f"inside the {kind} folders (add other folders with an extra-paths file)")
            aliases.setdefault(str(kind), {})[requested] = target
    return aliases
