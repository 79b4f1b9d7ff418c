"""ComfyUI's UI format (what the editor saves and embeds in PNGs) converted to our API-format `Workflow`.

ComfyUI's server has no such converter (its front end does it in the browser); we do it from
the node declarations, so it works for any registered node type:

- `widgets_values` are matched to the declaration's widget inputs in input order (required,
  then optional), skipping the extra value that follows a seed-like Int or an upload combo;
  missing trailing values come from the declared defaults. A dict is keyed by input name.
- A link is followed through `Reroute`s, bypassed nodes (to their first input of the output's
  type, the same slot preferred) and subgraph boundaries to the node that really produces it.
  A `PrimitiveNode` becomes the constant it holds. Links from muted nodes are dropped.
- Legacy group nodes (`workflow>NAME`) are first replaced by their inner nodes (`engine.ui_group_nodes`);
  Use Everywhere's broadcasts first become links (`engine.ui_use_everywhere`).
- Front-end-only nodes (notes, reroutes, primitives) are not emitted; unknown node types are,
  with their links, so that validation reports them as missing node types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.declare import NodeDeclaration
from engine.registry import NodeRegistry
from engine.types import ANY, Choice
from engine.ui_group_nodes import expand_group_nodes
from engine.ui_subgraph import BOUNDARY, BYPASSED, INSTANCE, MUTED, Edge, UIFormatError, UIInput, UINode, flatten
from engine.ui_use_everywhere import UE_CONSTANT_TYPES, UE_VIRTUAL_TYPES, resolve_use_everywhere
from engine.workflow import LinkRef, NodeSpec, Workflow

__all__ = ["UIFormatError", "is_ui_format", "ui_to_api", "FRONTEND_ONLY_TYPES"]

REROUTE_TYPES = frozenset({"Reroute"})
PRIMITIVE_TYPES = frozenset({"PrimitiveNode"}) | UE_CONSTANT_TYPES   # Seed Everywhere holds a seed
# Nodes that only exist in the editor and feed nothing: notes and labels (core and popular packs).
IGNORED_TYPES = frozenset({"Note", "MarkdownNote", "Label (rgthree)", "Bookmark (rgthree)",
                           "Fast Groups Bypasser (rgthree)", "Fast Groups Muter (rgthree)",
                           "Fast Bypasser (rgthree)", "Fast Muter (rgthree)", "Note Plus (mtb)"}) | UE_VIRTUAL_TYPES
FRONTEND_ONLY_TYPES = REROUTE_TYPES | PRIMITIVE_TYPES | IGNORED_TYPES

# How an input resolved.
_LINK, _CONSTANT, _UNCONNECTED, _MISSING = "link", "constant", "unconnected", "missing"


@dataclass(frozen=True)
class _Resolved:
    """`_LINK` to (node, slot); a `_CONSTANT` value; `_UNCONNECTED` (the node's own widget value
    applies, as in ComfyUI); or `_MISSING` (the source is muted, gone, or a bypass found no input)."""

    kind: str
    value: Any = None


_UNCONNECTED_R = _Resolved(_UNCONNECTED)
_MISSING_R = _Resolved(_MISSING)


def is_ui_format(data: Any) -> bool:
    """True for a UI-format workflow (a `nodes` list and `links`), False for API format or anything else."""
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def ui_to_api(ui: dict, registry: NodeRegistry) -> Workflow:
    """Convert a UI-format workflow; UIFormatError says which UI node is malformed and how.

    Deterministic: node ids are the UI ids as strings ("<instance>:<inner>" inside subgraphs),
    in ascending order; every node gets `_meta.title` as ComfyUI does.
    """
    if not isinstance(ui, dict):
        raise UIFormatError(f"a UI-format workflow must be a JSON object, got {type(ui).__name__}")
    if not isinstance(ui.get("nodes"), list):
        raise UIFormatError("not a UI-format workflow: 'nodes' must be a list")
    ui = resolve_use_everywhere(ui)   # Use Everywhere's broadcasts become links first
    nodes = flatten(expand_group_nodes(ui, registry, IGNORED_TYPES))
    resolver = _Resolver(nodes, registry)
    workflow = Workflow()
    for uid in sorted(nodes, key=_uid_order):
        node = nodes[uid]
        if resolver.kind(node) == "node" and node.mode not in (MUTED, BYPASSED):
            workflow.nodes[uid] = _api_node(node, registry.get(node.type), resolver)
    return workflow


def _uid_order(uid: str) -> tuple:
    return tuple((0, int(part), "") if part.lstrip("-").isdigit() else (1, 0, part) for part in uid.split(":"))


def _api_node(node: UINode, decl: NodeDeclaration | None, resolver: "_Resolver") -> NodeSpec:
    inputs = widget_inputs(node, decl) if decl is not None else {}
    for inp in node.inputs:
        resolved = resolver.resolve_input(inp, node.uid, set())
        if resolved.kind == _LINK:
            inputs[inp.name] = LinkRef(*resolved.value)
        elif resolved.kind == _CONSTANT:
            inputs[inp.name] = resolved.value
        elif resolved.kind == _MISSING:
            inputs.pop(inp.name, None)
    if decl is not None:   # declaration order reads best; inputs the declaration lacks come last
        order = {name: i for i, name in enumerate(decl.input_order)}
        inputs = dict(sorted(inputs.items(), key=lambda item: order.get(item[0], len(order))))
    title = node.title or (decl.display_name if decl is not None else None) or node.type
    return NodeSpec(class_type=node.type, inputs=inputs, title=title)


def _default(spec: Any) -> tuple[bool, Any]:
    """(has one, value): the declared default, or a fixed combo's first choice."""
    default = getattr(spec, "default", None)
    if default is not None:
        return True, default
    if isinstance(spec, Choice) and spec.choices:
        return True, spec.choices[0]
    return False, None


def widget_inputs(node: UINode, decl: NodeDeclaration) -> dict[str, Any]:
    """The node's widget values by input name, from its `widgets_values` and the declaration."""
    values = node.widgets_values
    result: dict[str, Any] = {}
    position = 0
    for name in decl.input_order:
        spec = decl.inputs[name]
        if not spec.is_widget:
            continue
        if isinstance(values, dict) and name in values:
            result[name] = values[name]
        elif isinstance(values, list) and position < len(values):
            result[name] = values[position]
        else:
            has_default, default = _default(spec)
            if has_default:
                result[name] = default
        # Seed-like Ints are followed by their control mode, upload combos by "image".
        position += 1 + spec.extra_widget_values
    return result


def _types_match(a: str, b: str) -> bool:
    return a == b or ANY in (a, b)


class _Resolver:
    """Follows links through pass-through nodes to the node that produces the value."""

    def __init__(self, nodes: dict[str, UINode], registry: NodeRegistry) -> None:
        self.nodes = nodes
        self.registry = registry

    def kind(self, node: UINode) -> str:
        if node.role in (INSTANCE, BOUNDARY):
            return node.role
        if node.type in self.registry:
            return "node"
        if node.type in REROUTE_TYPES:
            return "reroute"
        if node.type in PRIMITIVE_TYPES:
            return "primitive"
        if node.type in IGNORED_TYPES:
            return "ignored"
        return "node"      # unknown: emitted, so that validation reports the missing type

    def resolve_input(self, inp: UIInput, consumer: str, seen: set) -> _Resolved:
        """What feeds `inp`; `consumer` is the emitted node asking, `seen` the pass-throughs crossed."""
        if inp.edge is None:
            return _Resolved(_CONSTANT, inp.value) if inp.has_value else _UNCONNECTED_R
        return self.resolve_edge(inp.edge, consumer, seen)

    def resolve_edge(self, edge: Edge, consumer: str, seen: set) -> _Resolved:
        if edge.origin is None or edge.origin not in self.nodes:
            return _MISSING_R
        key = (edge.origin, edge.slot)
        if key in seen:
            raise UIFormatError(f"node {consumer}: an input's link loops through pass-through nodes "
                                f"(reroutes, bypassed nodes or subgraph boundaries) back to node {edge.origin}",
                                consumer)
        seen.add(key)
        origin = self.nodes[edge.origin]
        kind = self.kind(origin)
        if kind in ("node", INSTANCE) and origin.mode == MUTED:
            return _MISSING_R
        if kind in ("node", INSTANCE) and origin.mode == BYPASSED:
            return self._bypass(origin, edge, consumer, seen)
        if kind == "node":
            return _Resolved(_LINK, (origin.uid, edge.slot))
        if kind == INSTANCE:
            inner = origin.inner_outputs[edge.slot] if 0 <= edge.slot < len(origin.inner_outputs) else None
            return self.resolve_edge(inner, consumer, seen) if inner is not None else _UNCONNECTED_R
        if kind == BOUNDARY:
            if not 0 <= edge.slot < len(origin.inputs):
                return _MISSING_R
            return self.resolve_input(origin.inputs[edge.slot], consumer, seen)
        if kind == "reroute":
            return self.resolve_input(origin.inputs[0], consumer, seen) if origin.inputs else _UNCONNECTED_R
        if kind == "primitive":
            values = origin.widgets_values
            return _Resolved(_CONSTANT, values[0]) if isinstance(values, list) and values else _UNCONNECTED_R
        return _MISSING_R   # a note cannot produce anything

    def _bypass(self, origin: UINode, edge: Edge, consumer: str, seen: set) -> _Resolved:
        """A bypassed node passes on its first input of the output's type, the same slot preferred."""
        out_type = origin.output_types[edge.slot] if 0 <= edge.slot < len(origin.output_types) else edge.type
        order = ([edge.slot] if 0 <= edge.slot < len(origin.inputs) else []) + list(range(len(origin.inputs)))
        for index in order:
            if _types_match(origin.inputs[index].type, out_type):
                return self.resolve_input(origin.inputs[index], consumer, seen)
        return _MISSING_R
