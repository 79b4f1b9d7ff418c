"""Validation error values in ComfyUI's shape: `{type, message, details, extra_info}`.

Kept apart from the checks so the wording of every error a user can meet is in one place.
"""

from __future__ import annotations

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
