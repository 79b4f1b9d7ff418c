"""ltdrdata/ComfyUI-Impact-Pack's wildcard prompts (modules/impact/wildcards.py), with files under `models/wildcards`.

Expansion follows the pack's `process` step for step, drawing from numpy's generator seeded with the node's
seed, so a seed picks the same options as in ComfyUI: `{a|b}` options (with `2::a` weights and `1-2$$`
multi-select), `__name__` files (`*` globs, a bare name also matching `*/name`, `3#__name__` repeats),
nested up to 99 passes.
The pack's detection nodes (Ultralytics, SAM, detailers) are not rebuilt: see `known_packs`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import Paths
from engine.types import Boolean, Choice, Int, String

WILDCARDS_KIND = "wildcards"
SEED_MAX = 0xFFFFFFFFFFFFFFFF
SELECT_PROMPT = "Select the Wildcard to add to the text"
MAX_PASSES = 99   # the pack's loop: `replace_depth = 100` counted down while above 1
_OPTIONS = re.compile(r"{([^{}]*?)}")
_WILDCARD = re.compile(r"__([\w.\-+/*\\]+)__")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_QUANTIFIED = re.compile(r"(?P<quantifier>\d+)#__(?P<keyword>[\w.\-+/*\\]+)__", re.IGNORECASE)


def _normalize(key: str) -> str:
    return key.replace("\\", "/").lower()


def _add_yaml_entries(table: dict[str, list[str]], key: str, value: Any) -> None:
    """A YAML list is one wildcard; a mapping nests its keys as `parent/child`."""
    if isinstance(value, list):
        table[_normalize(key)] = [str(item) for item in value]
    elif isinstance(value, dict):
        for child, sub in value.items():
            _add_yaml_entries(table, f"{key}/{child}", sub)


def read_wildcards(folders: list[Path]) -> dict[str, list[str]]:
    """Wildcard name → its lines: `.txt` files by relative path without suffix (lower case), and the
    lists inside `.yaml` files by their keys. Files that resolve outside their folder are skipped."""
    table: dict[str, list[str]] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        root = folder.resolve()
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or root not in path.resolve().parents:
                continue
            if path.suffix == ".txt":
                key = path.relative_to(folder).with_suffix("").as_posix().lower()
                # The pack reads Latin-1 (which never fails); kept so non-ASCII lines give the same text.
                table[key] = path.read_text(encoding="ISO-8859-1").splitlines()
            elif path.suffix == ".yaml":
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                if isinstance(data, dict):
                    for key, value in data.items():
                        _add_yaml_entries(table, str(key), value)
    return table


def _is_number(text: str) -> bool:
    return _NUMBER.match(text) is not None


def _select_range(options: list[str]) -> tuple[tuple[int, int] | None, str]:
    """`count$$`, `a-b$$`, `-b$$` and `count$$ sep $$` prefixes of the first option: the range of how many
    options to pick and the separator; the prefix is removed from `options[0]`."""
    parts = options[0].split("$$")
    if len(parts) < 2:
        return None, " "
    match = re.match(r"(\d+)(-(\d+))?", options[0])
    if match is None:
        match = re.match(r"-(\d+)", options[0])
        low, high = "1", (match.group(1).strip() if match else None)
    else:
        low, high = match.group(1).strip(), (match.group(3).strip() if match.group(3) is not None else None)
    if match is None:
        return None, " "
    picked: tuple[int, int] | None = None
    if high is not None and _is_number(low) and _is_number(high):
        picked = int(low), int(high)
    elif _is_number(low):
        picked = int(low), int(low)
    separator = " "
    if picked is not None and len(parts) == 2:
        options[0] = parts[1]
    elif picked is not None and len(parts) == 3:
        separator, options[0] = parts[1], parts[2]
    return picked, separator


def _choose_options(body: str, rng: np.random.Generator) -> str:
    options = body.split("|")
    picked_range, separator = _select_range(options)
    weights = []
    for option in options:
        parts = option.split("::", 1)
        weights.append(float(parts[0].strip()) if len(parts) == 2 and _is_number(parts[0].strip()) else 1)
    total = sum(weights)
    probabilities = [w / total for w in weights]
    count: Any = 1 if picked_range is None else rng.integers(low=picked_range[0], high=picked_range[1] + 1, size=1)
    if count > len(options):
        rng.shuffle(options)
        chosen: Any = options
    else:
        chosen = rng.choice(options, p=probabilities, size=count, replace=False)
    return separator.join(re.sub(r"^\s*[0-9.]+::", "", str(item), count=1) for item in chosen)


def _replace_options(text: str, rng: np.random.Generator) -> tuple[str, bool]:
    found = False

    def replace(match: re.Match) -> str:
        nonlocal found
        found = True
        return _choose_options(match.group(1), rng)

    return _OPTIONS.sub(replace, text), found


def _replace_wildcards(text: str, table: dict[str, list[str]], rng: np.random.Generator) -> tuple[str, bool]:
    found = False
    for name in _WILDCARD.findall(text):
        key = _normalize(name.lower())
        if key in table:
            text, found = text.replace(f"__{name}__", str(rng.choice(table[key])), 1), True
        elif "*" in key:
            pattern = key.replace("*", ".*").replace("+", "\\+")
            pool = [line for k, lines in table.items() if re.match(pattern, k) is not None for line in lines]
            if pool:
                text, found = text.replace(f"__{name}__", str(rng.choice(pool)), 1), True
        elif "/" not in key:   # a bare name also matches the same name in any subfolder
            text, found = _replace_wildcards(text.replace(f"__{name}__", f"__*/{name}__", 1), table, rng)
    return text, found


def _expand_quantifiers(text: str) -> str:
    """`3#__name__` becomes `__name__|__name__|__name__` (three draws of the wildcard)."""
    for match in _QUANTIFIED.finditer(text):
        keyword = match["keyword"].lower()
        repeated = "__|__".join([keyword] * int(match["quantifier"]))
        escaped = keyword.replace("*", "\\*")
        text = re.sub(rf"(?P<quantifier>\d+)#__(?P<keyword>{escaped})__", f"__{repeated}__", text,
                      flags=re.IGNORECASE)
    return text


def expand_wildcards(text: str, seed: int | None, table: dict[str, list[str]]) -> str:
    """`text` with options and wildcards replaced, as the pack's `process(text, seed)` does."""
    rng = np.random.default_rng(seed)   # the pack draws from numpy's generator seeded with the node's seed
    for _ in range(MAX_PASSES):
        text = _expand_quantifiers(text)
        text, replaced = _replace_options(text, rng)
        while replaced:
            text, replaced = _replace_options(text, rng)
        text, replaced_wildcard = _replace_wildcards(text, table, rng)
        if not replaced_wildcard:
            break
    return text


def wildcard_choices(paths: Paths | None) -> list[str]:
    names = read_wildcards((paths or Paths()).model_dirs(WILDCARDS_KIND))
    return [SELECT_PROMPT, *(f"__{name}__" for name in names)]


@node("ImpactWildcardProcessor", display_name="ImpactWildcardProcessor", category="ImpactPack/Prompt",
      outputs=[Out("STRING", "STRING")])
class ImpactWildcardProcessor:
    """Expands `{a|b}` options and `__name__` wildcard files (models/wildcards) with a seed. Populate
    expands `wildcard_text`; Fixed passes `populated_text` on (expanding what wildcards it still holds)."""

    wildcard_text = String("", multiline=True)
    populated_text = String("", multiline=True)
    mode = Boolean(True, label_on="Populate", label_off="Fixed")
    seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)   # the editor adds one to any "seed"
    # The pack's input name has spaces: declared through the class namespace. The widget only helps
    # typing in the editor; its value never changes the result.
    locals()["Select to add Wildcard"] = Choice(wildcard_choices)

    def fingerprint(self, paths: Paths, **constants: Any) -> str:
        """The wildcard files are read on each run: their contents join the cache key."""
        return repr(sorted(read_wildcards(paths.model_dirs(WILDCARDS_KIND)).items()))

    def run(self, ctx: RunContext, **inputs: Any) -> tuple:
        table = read_wildcards(ctx.paths.model_dirs(WILDCARDS_KIND))
        text = inputs["wildcard_text"] if inputs["mode"] else inputs["populated_text"]
        return (expand_wildcards(text, inputs["seed"], table),)
