"""The workflow model: ComfyUI's API format as typed Python values, loaded from and saved to JSON.

A workflow maps node ids (strings) to `NodeSpec`s. An input value is either a constant or a
`LinkRef` to another node's output slot. `{"__value__": [...]}` wraps a literal list, since a
bare 2-list means a link. A list that is neither stays a `MalformedLink`, which validation reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class WorkflowFormatError(ValueError):
    """The JSON is not an API-format workflow; `node_id` names the offending node if any."""

    def __init__(self, message: str, node_id: str | None = None) -> None:
        super().__init__(message)
        self.node_id = node_id


@dataclass(frozen=True)
class LinkRef:
    """A reference to output `slot` of node `node_id`."""

    node_id: str
    slot: int

    def to_json(self) -> list[Any]:
        return [self.node_id, self.slot]


@dataclass(frozen=True)
class MalformedLink:
    """A list input that is not a valid `[node_id, slot]` pair (kept for a precise error)."""

    raw: Any


@dataclass
class NodeSpec:
    class_type: str
    inputs: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def links(self) -> dict[str, LinkRef]:
        return {name: v for name, v in self.inputs.items() if isinstance(v, LinkRef)}

    def constants(self) -> dict[str, Any]:
        return {name: v for name, v in self.inputs.items() if not isinstance(v, (LinkRef, MalformedLink))}


def parse_value(value: Any) -> Any:
    """One API-format input value as a constant, LinkRef or MalformedLink."""
    if isinstance(value, dict) and set(value) == {"__value__"}:
        return list(value["__value__"]) if isinstance(value["__value__"], list) else value["__value__"]
    if isinstance(value, list):
        if (len(value) == 2 and isinstance(value[0], (str, int)) and not isinstance(value[0], bool)
                and isinstance(value[1], int) and not isinstance(value[1], bool)):
            return LinkRef(str(value[0]), value[1])
        return MalformedLink(value)
    return value


def dump_value(value: Any) -> Any:
    if isinstance(value, LinkRef):
        return value.to_json()
    if isinstance(value, MalformedLink):
        return value.raw
    if isinstance(value, (list, tuple)):
        return {"__value__": list(value)}
    return value


@dataclass
class Workflow:
    nodes: dict[str, NodeSpec] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: Any) -> "Workflow":
        """Parse an API-format dict; WorkflowFormatError says which node is malformed and how."""
        if not isinstance(data, dict):
            raise WorkflowFormatError(f"a workflow must be a JSON object of nodes, got {type(data).__name__}")
        nodes: dict[str, NodeSpec] = {}
        for raw_id, raw in data.items():
            node_id = str(raw_id)
            if not isinstance(raw, dict):
                raise WorkflowFormatError(f"node {node_id}: expected an object, got {type(raw).__name__}", node_id)
            class_type = raw.get("class_type")
            if not isinstance(class_type, str) or not class_type:
                raise WorkflowFormatError(f"node {node_id}: missing or invalid 'class_type'", node_id)
            inputs = raw.get("inputs", {})
            if not isinstance(inputs, dict):
                raise WorkflowFormatError(f"node {node_id} ({class_type}): 'inputs' must be an object", node_id)
            meta: dict[str, Any] = raw["_meta"] if isinstance(raw.get("_meta"), dict) else {}
            nodes[node_id] = NodeSpec(
                class_type=class_type,
                inputs={str(k): parse_value(v) for k, v in inputs.items()},
                title=meta.get("title") if isinstance(meta.get("title"), str) else None,
                meta=dict(meta),
            )
        return cls(nodes)

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for node_id, spec in self.nodes.items():
            entry: dict[str, Any] = {"inputs": {k: dump_value(v) for k, v in spec.inputs.items()},
                                     "class_type": spec.class_type}
            meta = dict(spec.meta)
            if spec.title is not None:
                meta["title"] = spec.title
            if meta:
                entry["_meta"] = meta
            out[node_id] = entry
        return out

    @classmethod
    def loads(cls, text: str) -> "Workflow":
        try:
            return cls.from_api(json.loads(text))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise WorkflowFormatError(f"not valid JSON: {exc}") from None

    def dumps(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_api(), indent=indent)

    @classmethod
    def load(cls, path: Path | str) -> "Workflow":
        return cls.loads(Path(path).read_text(encoding="utf-8"))

    def save(self, path: Path | str) -> None:
        Path(path).write_text(self.dumps() + "\n", encoding="utf-8")

    def set_input(self, node_id: str, name: str, value: Any) -> None:
        """Override one input (`--set NODE.INPUT=VALUE`); KeyError names a missing node."""
        if node_id not in self.nodes:
            raise KeyError(f"no node {node_id!r} in the workflow")
        self.nodes[node_id].inputs[name] = value
