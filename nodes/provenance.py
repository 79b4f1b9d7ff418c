"""The reproducibility record saved with each image: what made it, beyond the workflow itself.

ComfyUI's `prompt` and `workflow` chunks say what was asked; this says with what: the engine
version, each model file's content hash, the seeds and samplers upstream of the image (what the
nodes' declarations say they contribute), and the device and precision the models ran in. It is
written as one extra PNG text chunk, `sdgraph`.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from engine.context import RunContext
from nodes.models.file_hash import model_hash
from nodes.models.runtime import runtime_from_settings

RECORD_CHUNK = "sdgraph"


def engine_version() -> str:
    try:
        return metadata.version("sdgraph")
    except metadata.PackageNotFoundError:
        return "unknown"


def _model_entry(ctx: RunContext, kind: str, name: str) -> dict[str, Any]:
    """A model file's name and content hash (or why it could not be hashed)."""
    from nodes.loaders import checkpoint_path

    entry: dict[str, Any] = {"name": name}
    try:
        if kind == "checkpoints":
            path = checkpoint_path(ctx.paths, name)
        else:
            path = ctx.paths.model_path(kind, ctx.paths.resolve_model_name(kind, name))
        entry["sha256"] = model_hash(path, ctx.paths.models_dir)
    except (OSError, ValueError) as exc:
        entry["error"] = str(exc)
    return entry


def reproducibility_record(ctx: RunContext) -> dict[str, Any]:
    """The record for the image saved by node `ctx.node_id` of the running prompt.

    Read from the upstream nodes' declarations: each declared `provenance` section (samplers,
    LoRA strengths, ...) and each model file a node loads, by kind, with its hash. A node's
    entries in one section are merged, so a LoRA's file and its strengths form one entry.
    """
    runtime = runtime_from_settings(ctx.settings)
    record: dict[str, Any] = {"engine_version": engine_version(), "device": str(runtime.device),
                              "dtype": runtime.precision, "samplers": [], "checkpoints": [], "loras": []}
    entries: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(section: str, node_id: str) -> dict[str, Any]:
        if (section, node_id) not in entries:
            entries[section, node_id] = {"node": node_id}
            record.setdefault(section, []).append(entries[section, node_id])
        return entries[section, node_id]

    for upstream in ctx.upstream():
        for model in upstream.models:
            entry(model.kind, upstream.node_id).update(_model_entry(ctx, model.kind, model.name))
        if upstream.section:
            entry(upstream.section, upstream.node_id).update(upstream.values)
    return record
