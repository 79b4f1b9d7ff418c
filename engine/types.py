"""Input specifications: the typed fields a node declares, and how constants are coerced.

Each spec knows its socket type, whether it is a widget (a constant the user edits) or a
link-only socket, how to coerce a JSON value into the Python value the node receives, and
how to describe itself in ComfyUI's `/object_info` shape.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

# Socket types shared by the standard nodes. Any other upper-case string is a valid custom type.
MODEL = "MODEL"
CLIP = "CLIP"
VAE = "VAE"
CONDITIONING = "CONDITIONING"
LATENT = "LATENT"
IMAGE = "IMAGE"
MASK = "MASK"
ANY = "*"
COMBO = "COMBO"

_INT = TypeAdapter(int)
_FLOAT = TypeAdapter(float)
_BOOL = TypeAdapter(bool)
_STR = TypeAdapter(str)


class CoercionError(ValueError):
    """A constant could not be converted to the type its input declares."""


class ChoicesProvider:
    """Computes a combo's choices when asked (e.g. the files in a model folder).

    `model_kind` names the model folder kind (e.g. "checkpoints") when the choices are model files.
    """

    model_kind: str | None = None

    def choices(self, paths: Any) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError


class InputSpec(BaseModel):
    """Base of every declared input. `optional` inputs may be left unconnected."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    type: str
    optional: bool = False
    tooltip: str | None = None
    # The model kind (e.g. "checkpoints") whose file this input names and the node loads: the
    # dispatcher sends the prompt to a worker that already holds it, and the record saved with
    # an image hashes it. A Choice of model files sets it from its provider.
    loads: str | None = None

    @property
    def is_widget(self) -> bool:
        """True when the input takes a constant edited in the UI (not a link-only socket)."""
        return False

    @property
    def extra_widget_values(self) -> int:
        """UI-format values that follow this widget without being inputs (seed control, upload)."""
        return 0

    def accepts_link_type(self, output_type: str) -> bool:
        """Whether an output of `output_type` may feed this input."""
        if ANY in (self.type, output_type):
            return True
        # ComfyUI allows a comma-separated list of accepted types.
        return output_type in self.type.split(",") or self.type in output_type.split(",")

    def coerce(self, value: Any) -> Any:
        return value

    def range_errors(self, value: Any) -> list[tuple[str, str]]:
        """(error type, message) pairs for a coerced value outside this input's bounds."""
        return []

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if self.tooltip:
            opts["tooltip"] = self.tooltip
        return opts

    def object_info(self, paths: Any = None) -> list[Any]:
        """This input as ComfyUI's `[TYPE, {options}]` pair."""
        opts = self.options()
        return [self.type, opts] if opts else [self.type]


# Types a ComfyUI editor shows as a widget unless the input is marked `forceInput`.
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


class Link(InputSpec):
    """A socket that only takes a link from another node's output of the given type."""

    def __init__(self, type: str, **kw: Any) -> None:
        super().__init__(type=type, **kw)

    def options(self) -> dict[str, Any]:
        opts = super().options()
        if self.type in WIDGET_TYPES:
            # Without it an editor draws a widget and writes a value for it into widgets_values.
            opts["forceInput"] = True
        return opts


class _Widget(InputSpec):
    default: Any = None
    force_input: bool = False

    @property
    def is_widget(self) -> bool:
        return not self.force_input

    def options(self) -> dict[str, Any]:
        opts = super().options()
        if self.default is not None:
            opts["default"] = self.default
        if self.force_input:
            opts["forceInput"] = True
        return opts


def _adapt(adapter: TypeAdapter, type_name: str, value: Any) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise CoercionError(f"cannot convert {value!r} to {type_name}: {exc.errors()[0]['msg']}") from None


class _Number(_Widget):
    min: float | int | None = None
    max: float | int | None = None
    step: float | int | None = None

    def range_errors(self, value: Any) -> list[tuple[str, str]]:
        if self.min is not None and value < self.min:
            return [("value_smaller_than_min", f"Value {value} smaller than min of {self.min}")]
        if self.max is not None and value > self.max:
            return [("value_bigger_than_max", f"Value {value} bigger than max of {self.max}")]
        return []

    def options(self) -> dict[str, Any]:
        opts = super().options()
        for key in ("min", "max", "step"):
            if getattr(self, key) is not None:
                opts[key] = getattr(self, key)
        return opts


class Int(_Number):
    """An integer widget. `control_after_generate` marks seed-like inputs (UI adds a mode value)."""

    control_after_generate: bool = False

    def __init__(self, default: int = 0, **kw: Any) -> None:
        super().__init__(type="INT", default=default, **kw)

    @property
    def extra_widget_values(self) -> int:
        return 1 if self.control_after_generate else 0

    def coerce(self, value: Any) -> int:
        if isinstance(value, bool):
            raise CoercionError(f"cannot convert {value!r} to INT: booleans are not numbers")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _adapt(_INT, "INT", value.strip() if isinstance(value, str) else value)

    def options(self) -> dict[str, Any]:
        opts = super().options()
        if self.control_after_generate:
            opts["control_after_generate"] = True
        return opts


class Float(_Number):
    """A floating-point widget; `round` is the precision the UI rounds to (ComfyUI's option; False: no
    rounding at all, listed as `"round": false` as ComfyUI lists it)."""

    round: bool | float | None = None

    def __init__(self, default: float = 0.0, **kw: Any) -> None:
        super().__init__(type="FLOAT", default=default, **kw)

    def coerce(self, value: Any) -> float:
        if isinstance(value, bool):
            raise CoercionError(f"cannot convert {value!r} to FLOAT: booleans are not numbers")
        number = _adapt(_FLOAT, "FLOAT", value.strip() if isinstance(value, str) else value)
        if not math.isfinite(number):  # JSON's NaN and Infinity parse; a NaN cfg renders a black image
            raise CoercionError(f"cannot convert {value!r} to FLOAT: not a finite number")
        return number

    def options(self) -> dict[str, Any]:
        opts = super().options()
        if self.round is not None:
            opts["round"] = self.round
        return opts


class String(_Widget):
    """A text widget, single-line or multiline. `max_length` bounds what a user can send."""

    multiline: bool = False
    dynamic_prompts: bool = False

    def __init__(self, default: str = "", **kw: Any) -> None:
        super().__init__(type="STRING", default=default, **kw)

    def coerce(self, value: Any) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return _adapt(_STR, "STRING", value)

    def options(self) -> dict[str, Any]:
        opts = super().options()
        if self.multiline:
            opts["multiline"] = True
        if self.dynamic_prompts:
            opts["dynamicPrompts"] = True
        return opts


class Boolean(_Widget):
    """A toggle; accepts true/false, 1/0 and their strings."""

    label_on: str | None = None
    label_off: str | None = None

    def __init__(self, default: bool = False, **kw: Any) -> None:
        super().__init__(type="BOOLEAN", default=default, **kw)

    def coerce(self, value: Any) -> bool:
        if isinstance(value, str) and value.strip().lower() in ("enable", "enabled", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("disable", "disabled", "off"):
            return False
        return _adapt(_BOOL, "BOOLEAN", value)

    def options(self) -> dict[str, Any]:
        opts = super().options()
        if self.label_on:
            opts["label_on"] = self.label_on
        if self.label_off:
            opts["label_off"] = self.label_off
        return opts


class Choice(_Widget):
    """A combo: fixed `choices`, or a `provider` asked at validation time (files in a folder).

    In `/object_info` a combo's type is the list of its choices, as in ComfyUI.
    `image_upload` adds the upload button, which takes one extra UI widget value.
    """

    choices: tuple[str, ...] = ()
    provider: ChoicesProvider | Callable[[Any], Sequence[str]] | None = None
    image_upload: bool = False

    def __init__(self, choices: Sequence[str] | ChoicesProvider | Callable[[Any], Sequence[str]] = (),
                 **kw: Any) -> None:
        if isinstance(choices, (list, tuple)):
            # pydantic's fields of this subclass: mypy checks against _Widget's __init__
            super().__init__(type=COMBO, choices=tuple(choices), **kw)  # type: ignore[call-arg]
        else:
            kw.setdefault("loads", getattr(choices, "model_kind", None))
            super().__init__(type=COMBO, provider=choices, **kw)  # type: ignore[call-arg]

    @property
    def extra_widget_values(self) -> int:
        return 1 if self.image_upload else 0

    def accepts_link_type(self, output_type: str) -> bool:
        return output_type in (COMBO, "STRING", ANY) or output_type.startswith("COMBO")

    def available(self, paths: Any = None) -> list[str]:
        """The current choices (a provider is asked each time: folders change)."""
        if self.provider is None:
            return list(self.choices)
        if isinstance(self.provider, ChoicesProvider):
            return list(self.provider.choices(paths))
        return list(self.provider(paths))

    def coerce(self, value: Any) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return _adapt(_STR, "COMBO", value)

    def options(self) -> dict[str, Any]:
        opts = super().options()
        if self.image_upload:
            opts["image_upload"] = True
        return opts

    def object_info(self, paths: Any = None) -> list[Any]:
        opts = self.options()
        choices = self.available(paths)
        return [choices, opts] if opts else [choices]
