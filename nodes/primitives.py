"""Primitive and utility nodes: constants evaluated in the graph, string joining, and showing any value.

ComfyUI's PrimitiveInt/Float/String/Boolean (comfy_extras/nodes_primitive.py) declare no default,
so neither do we: `/object_info` then describes them as ComfyUI does, and a UI file always carries the value.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from engine.context import RunContext
from engine.declare import NodeResult, Out, node
from engine.types import ANY, Boolean, Float, Int, Link, String

PREVIEW_MAX_CHARS = 100_000
NO_DEFAULT: Any = None  # a widget declared without a default: /object_info lists none


@node("PrimitiveInt", display_name="Int", category="utils/primitive", outputs=[Out("INT")])
class PrimitiveInt:
    """An integer constant; like a seed, the editor can change it after each run."""

    value = Int(NO_DEFAULT, min=-sys.maxsize, max=sys.maxsize, control_after_generate=True)

    def run(self, ctx: RunContext, value: int) -> tuple:
        return (value,)


@node("PrimitiveFloat", display_name="Float", category="utils/primitive", outputs=[Out("FLOAT")])
class PrimitiveFloat:
    """A floating-point constant."""

    value = Float(NO_DEFAULT, min=-sys.maxsize, max=sys.maxsize)

    def run(self, ctx: RunContext, value: float) -> tuple:
        return (value,)


@node("PrimitiveString", display_name="String", category="utils/primitive", outputs=[Out("STRING")])
class PrimitiveString:
    """A one-line text constant."""

    value = String(NO_DEFAULT)

    def run(self, ctx: RunContext, value: str) -> tuple:
        return (value,)


@node("PrimitiveStringMultiline", display_name="String (Multiline)", category="utils/primitive",
      outputs=[Out("STRING")])
class PrimitiveStringMultiline:
    """A multi-line text constant."""

    value = String(NO_DEFAULT, multiline=True)

    def run(self, ctx: RunContext, value: str) -> tuple:
        return (value,)


@node("PrimitiveBoolean", display_name="Boolean", category="utils/primitive", outputs=[Out("BOOLEAN")])
class PrimitiveBoolean:
    """A true/false constant."""

    value = Boolean(NO_DEFAULT)

    def run(self, ctx: RunContext, value: bool) -> tuple:
        return (value,)


@node("StringConcatenate", display_name="Concatenate", category="utils/string", outputs=[Out("STRING")])
class StringConcatenate:
    """string_a and string_b joined by the delimiter."""

    string_a = String(NO_DEFAULT, multiline=True)
    string_b = String(NO_DEFAULT, multiline=True)
    delimiter = String("")

    def run(self, ctx: RunContext, string_a: str, string_b: str, delimiter: str) -> tuple:
        return (delimiter.join((string_a, string_b)),)


def preview_text(value: Any) -> str:
    """What PreviewAny shows: strings as they are, numbers and booleans as text, the rest as JSON or repr.

    Long texts are cut (a tensor's JSON would never fit a preview anyway); ComfyUI shows "None" for None.
    """
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "None"
    elif isinstance(value, (bool, int, float)):
        text = str(value)
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= PREVIEW_MAX_CHARS else text[:PREVIEW_MAX_CHARS] + "…"


@node("PreviewAny", display_name="Preview Any", category="utils", output_node=True)
class PreviewAny:
    """Show any value as text in the editor."""

    source = Link(ANY)

    def run(self, ctx: RunContext, source: Any) -> NodeResult:
        return NodeResult(ui={"text": [preview_text(source)]})
