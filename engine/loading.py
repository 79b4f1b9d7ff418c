"""Opening a workflow from a file, whatever it holds: API JSON, UI JSON, or a PNG with metadata.

Returns the API-format workflow plus the `extra_pnginfo` worth carrying along (the UI workflow,
so images saved from it open again in an editor with their layout).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.pngmeta import read_png_metadata, workflow_from_metadata
from engine.registry import NodeRegistry
from engine.workflow import Workflow, WorkflowFormatError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_WORKFLOW_FILE_BYTES = 64 * 2**20


@dataclass
class LoadedWorkflow:
    workflow: Workflow
    extra_pnginfo: dict[str, Any] = field(default_factory=dict)
    source_format: str = "api"  # "api", "ui" or "png"


def workflow_from_json(data: Any, registry: NodeRegistry) -> LoadedWorkflow:
    """API or UI format, told apart by shape."""
    from engine.ui_format import is_ui_format, ui_to_api

    if is_ui_format(data):
        return LoadedWorkflow(ui_to_api(data, registry), {"workflow": data}, "ui")
    return LoadedWorkflow(Workflow.from_api(data), {}, "api")


def load_workflow_file(path: Path | str, registry: NodeRegistry) -> LoadedWorkflow:
    """Read a workflow file; WorkflowFormatError (a ValueError) explains what is wrong with it."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_WORKFLOW_FILE_BYTES:
            raise WorkflowFormatError(f"{path}: larger than {MAX_WORKFLOW_FILE_BYTES // 2**20} MiB")
        with path.open("rb") as handle:
            head = handle.read(len(PNG_SIGNATURE))
    except OSError as exc:
        raise WorkflowFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head == PNG_SIGNATURE:
        metadata = read_png_metadata(path)
        extra = {"workflow": metadata.workflow} if metadata.workflow else {}
        return LoadedWorkflow(workflow_from_metadata(metadata, registry), extra, "png")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WorkflowFormatError(f"{path}: not a workflow (neither JSON nor a PNG): {exc}") from None
    return workflow_from_json(data, registry)


def parse_override(text: str) -> tuple[str, str, Any]:
    """`NODE.INPUT=VALUE` → (node, input, value); VALUE is JSON when it parses, else a string."""
    target, sep, raw = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not sep or not dot or not node or not name:
        raise ValueError(f"--set {text!r}: expected NODE.INPUT=VALUE (e.g. 3.seed=42)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return node, name, value


def resolve_node_ref(workflow: Workflow, ref: str) -> str:
    """A node id, or a title / class name that names exactly one node."""
    if ref in workflow.nodes:
        return ref
    matches = [nid for nid, spec in workflow.nodes.items() if ref in (spec.title, spec.class_type)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"{ref!r} names {len(matches)} nodes ({', '.join(matches)}): use a node id")
    raise ValueError(f"no node {ref!r} in the workflow (ids: {', '.join(list(workflow.nodes)[:20])})")
