"""The reproducibility record saved with each image: what made it, beyond the workflow itself.

ComfyUI's `prompt` and `workflow` chunks say what was asked; this says with what: the engine
version, each checkpoint's content hash, the seeds and samplers upstream of the image, and the
device and precision the models ran in. It is written as one extra PNG text chunk, `sdgraph`.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from nodes.models.file_hash import model_hash
from nodes.models.runtime import runtime_from_settings

RECORD_CHUNK = "sdgraph"
SAMPLER_INPUTS = ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")


def engine_version() -> str:
    try:
        return metadata.version("sdgraph")
    except metadata.PackageNotFoundError:
        return "unknown"


def _upstream(prompt: dict[str, Any], node_id: str) -> list[str]:
    """Node ids the given node depends on, nearest first."""
    seen, order, stack = {node_id}, [], [node_id]
    while stack:
        current = stack.pop(0)
        for value in prompt.get(current, {}).get("inputs", {}).values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt and str(value[0]) not in seen:
                seen.add(str(value[0]))
                order.append(str(value[0]))
                stack.append(str(value[0]))
    return order


def _checkpoint_entry(ctx: Any, name: str) -> dict[str, Any]:
    from nodes.loaders import checkpoint_path

    entry: dict[str, Any] = {"name": name}
    try:
        path = checkpoint_path(ctx.paths, name)
        entry["sha256"] = model_hash(path, ctx.paths.models_dir)
    except (OSError, ValueError) as exc:
        entry["error"] = str(exc)
    return entry


def reproducibility_record(ctx: Any) -> dict[str, Any]:
    """The record for the image saved by node `ctx.node_id` of the running prompt."""
    prompt = ctx.prompt or {}
    runtime = runtime_from_settings(ctx.settings)
    record: dict[str, Any] = {"engine_version": engine_version(), "device": str(runtime.device),
                              "dtype": runtime.precision, "samplers": [], "checkpoints": [], "loras": []}
    for node_id in _upstream(prompt, ctx.node_id):
        node = prompt[node_id]
        inputs, class_type = node.get("inputs", {}), node.get("class_type")
        if class_type in ("KSampler", "KSamplerAdvanced"):
            record["samplers"].append({"node": node_id, **{k: inputs[k] for k in SAMPLER_INPUTS if k in inputs}})
        elif class_type == "CheckpointLoaderSimple" and isinstance(inputs.get("ckpt_name"), str):
            record["checkpoints"].append({"node": node_id, **_checkpoint_entry(ctx, inputs["ckpt_name"])})
        elif class_type == "LoraLoader":
            record["loras"].append({"node": node_id, **{k: inputs.get(k) for k in
                                                         ("lora_name", "strength_model", "strength_clip")}})
    return record
