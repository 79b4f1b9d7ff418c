"""Comparing our `/object_info` inputs with a table written from a node pack's (or ComfyUI's) source.

A table lists each section's inputs as `(name, type, options)`, `type` None for a combo whose choices
are model files (compared only as "a list of choices"); our tooltips are left out of the comparison.
"""

from __future__ import annotations

from typing import Any


def comparable(entry: list) -> tuple:
    """(type, options) of one `/object_info` input, without our tooltips; a combo's type as a list."""
    kind, options = entry[0], {k: v for k, v in (entry[1] if len(entry) > 1 else {}).items() if k != "tooltip"}
    return list(kind) if isinstance(kind, (list, tuple)) else kind, options


def assert_inputs_match(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Required and optional inputs in the table's order, with its types and options."""
    for section in ("required", "optional"):
        expected = theirs.get(section, [])
        actual = ours["input"].get(section, {})
        assert list(actual) == [name for name, *_ in expected], f"{section} input order"
        for name, kind, options in expected:
            got_kind, got_options = comparable(actual[name])
            assert isinstance(got_kind, list) if kind is None else got_kind == kind, name
            assert got_options == options, name
