"""Error values in ComfyUI's shapes: validation errors `{type, message, details, extra_info}` and
the `execution_error` payload of a failed run.

Kept apart from the checks so the wording of every error a user can meet is in one place.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

PROMPT_ERROR_MESSAGES = {
    "invalid_prompt": "Invalid prompt",
    "missing_node_type": "Node type not found",
    "prompt_no_outputs": "Prompt has no outputs",
    "prompt_outputs_failed_validation": "Prompt outputs failed validation",
    "graph_too_large": "Graph exceeds the configured limits",
}


def input_error(error_type: str, message: str, input_name: str | None, details: str = "",
                **extra: Any) -> dict[str, Any]:
    """One error of one node input (or of the node itself when `input_name` is None)."""
    extra_info: dict[str, Any] = {}
    if input_name is not None:
        extra_info["input_name"] = input_name
    extra_info.update(extra)
    return {"type": error_type, "message": message, "details": details or (input_name or ""),
            "extra_info": extra_info}


def prompt_error(error_type: str, details: str = "", **extra: Any) -> dict[str, Any]:
    """The prompt-level `error` of a rejected prompt."""
    return {"type": error_type, "message": PROMPT_ERROR_MESSAGES.get(error_type, error_type),
            "details": details, "extra_info": extra}


def describe(node_id: str, entry: dict[str, Any], title: str | None = None) -> list[str]:
    """Plain-language lines for one `node_errors` entry, for the CLI and logs."""
    who = f"{entry.get('class_type', '?')} (node {node_id}{', ' + repr(title) if title else ''})"
    lines = []
    for err in entry.get("errors", []):
        name = err.get("extra_info", {}).get("input_name")
        where = f"input '{name}'" if name else "node"
        lines.append(f"{who}, {where}: {err['message']}" + (f" — {err['details']}" if err.get("details")
                                                             and err["details"] != name else ""))
    return lines


@dataclass(frozen=True)
class ExecutionError:
    """Why a run failed: the `execution_error` event's data, from the executor to the history.

    `node_id` is None for a failure outside any node (a prompt that no longer validates, a
    worker that died); `node_errors` is set only for the former.
    """

    prompt_id: str
    exception_message: str
    exception_type: str
    node_id: str | None = None
    node_type: str | None = None
    traceback: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    current_inputs: dict[str, Any] = field(default_factory=dict)
    current_outputs: list[Any] = field(default_factory=list)
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))
    node_errors: dict[str, Any] | None = None

    @classmethod
    def from_exception(cls, prompt_id: str, exc: BaseException, **where: Any) -> "ExecutionError":
        """The error for `exc` raised in node `where["node_id"]` (or outside any node)."""
        return cls(prompt_id=prompt_id, exception_message=str(exc),
                   exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                   traceback=traceback.format_exception(type(exc), exc, exc.__traceback__), **where)

    def data(self) -> dict[str, Any]:
        """The event's data in ComfyUI's shape (`node_errors` only when there are some)."""
        data = asdict(self)
        if data["node_errors"] is None:
            del data["node_errors"]
        return data
