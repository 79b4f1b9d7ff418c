"""What made a node's inputs: the upstream nodes' declared provenance and the model files they load.

Read from the plan's declarations (a node's `provenance` and its `loads` inputs), so a node pack's
own sampler or loader appears in the record saved with an image without any change here. The
nodes layer turns these entries into the saved record (adding file hashes, device, versions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.compile import ModelUse
from engine.validate import Plan

_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class NodeRecord:
    """One upstream node's contribution: its declared `section` values and the models it loads."""

    node_id: str
    class_type: str
    section: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    models: tuple[ModelUse, ...] = ()


def upstream_records(plan: Plan, node_id: str, values: dict[str, tuple]) -> list[NodeRecord]:
    """Records of the nodes `node_id` depends on, nearest first; `values` holds the run's outputs.

    A declared provenance input that comes from a link is recorded with the value it carried when
    that value is a plain scalar (a seed from a primitive node, say).
    """
    records = []
    seen, queue = {node_id}, [node_id]
    while queue:
        current = queue.pop(0)
        for link in plan.links.get(current, {}).values():
            if link.node_id in seen:
                continue
            seen.add(link.node_id)
            queue.append(link.node_id)
            record = _record(plan, link.node_id, values)
            if record.section or record.models:
                records.append(record)
    return records


def _record(plan: Plan, node_id: str, values: dict[str, tuple]) -> NodeRecord:
    decl = plan.declarations[node_id]
    constants, links = plan.constants[node_id], plan.links[node_id]
    recorded: dict[str, Any] = {}
    for name in decl.provenance.inputs if decl.provenance else ():
        if name in constants:
            recorded[name] = constants[name]
        elif name in links and link_value(values, links[name]) is not None:
            recorded[name] = link_value(values, links[name])
    models = tuple(ModelUse(node_id, kind, constants[name]) for name, kind in decl.model_inputs.items()
                   if isinstance(constants.get(name), str))
    return NodeRecord(node_id, decl.class_type, decl.provenance.section if decl.provenance else None,
                      recorded, models)


def link_value(values: dict[str, tuple], link: Any) -> Any:
    """The scalar a link carried in this run, or None (not computed, or not a plain value)."""
    outputs = values.get(link.node_id)
    if outputs is None or link.slot >= len(outputs):
        return None
    value = outputs[link.slot]
    return value if isinstance(value, _SCALARS) else None
