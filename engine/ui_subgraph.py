"""Reading a UI-format graph into flat nodes, with subgraph instances expanded.

The editor saves links as `[id, from, from_slot, to, to_slot, type]` (objects inside subgraph
definitions) and nodes that refer to them by id. Here each node input gets its `Edge` (the
producing node and slot) directly, and every subgraph instance is expanded: an inner node gets
the execution id `"<instance id>:<inner id>"` (nested instances add segments), as the ComfyUI
front end names them. Two pass-through nodes stand for the instance's boundary: a `BOUNDARY`
node (uid `"<instance>:-10"`) whose output k is the instance's input k, and the instance itself
(`INSTANCE`), whose output k is what the definition links to its output node (-20) slot k.
What the nodes mean (reroute, primitive, bypass...) is left to `engine.ui_format`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.workflow import WorkflowFormatError

SUBGRAPH_INPUT_NODE = -10
SUBGRAPH_OUTPUT_NODE = -20
MUTED, BYPASSED = 2, 4
# Bounds on what expansion may build (definitions instantiated inside each other multiply);
# the node bound matches validation's default Limits.max_nodes.
MAX_FLAT_NODES = 100_000
MAX_SUBGRAPH_DEPTH = 32

# Roles of flat nodes.
NODE, INSTANCE, BOUNDARY = "node", "instance", "boundary"


class UIFormatError(WorkflowFormatError):
    """A UI-format workflow is malformed (a ValueError); `node_id` names the offending UI node if any."""


@dataclass(frozen=True)
class Edge:
    """Where a link comes from: output `slot` of flat node `origin` (None: that node does not exist)."""

    origin: str | None
    slot: int
    type: str


@dataclass
class UIInput:
    name: str
    type: str
    is_widget: bool
    edge: Edge | None = None      # None: not connected (no link, or a link id missing from the table)
    has_value: bool = False       # a boundary input's constant when nothing is connected outside
    value: Any = None


@dataclass
class UINode:
    uid: str
    type: str
    mode: int = 0
    title: str | None = None
    inputs: list[UIInput] = field(default_factory=list)
    output_types: list[str] = field(default_factory=list)
    widgets_values: Any = None
    role: str = NODE
    inner_outputs: list[Edge | None] = field(default_factory=list)   # INSTANCE: what feeds -20 slot k


@dataclass(frozen=True)
class _Link:
    origin: Any
    origin_slot: int
    target: Any
    target_slot: int
    type: str


def _where(prefix: str) -> str:
    return f" in subgraph instance {prefix[:-1]}" if prefix else ""


def _type_name(value: Any) -> str:
    if isinstance(value, list):       # the schema allows a list of types
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _slot(value: Any) -> int | None:
    """A slot index; the schema also allows int-like strings."""
    if _is_int(value):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def parse_links(raw: Any, prefix: str) -> dict[int, _Link]:
    """The link table by id. Nulls are skipped (real files have them); other garbage is an error."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise UIFormatError(f"'links'{_where(prefix)} must be a list, got {type(raw).__name__}")
    links: dict[int, _Link] = {}
    for entry in raw:
        if entry is None:
            continue
        if isinstance(entry, list) and len(entry) >= 6:
            link_id, origin, origin_slot, target, target_slot, link_type = entry[:6]
        elif isinstance(entry, dict) and {"id", "origin_id", "origin_slot", "target_id"} <= set(entry):
            link_id, origin, origin_slot = entry["id"], entry["origin_id"], entry["origin_slot"]
            target, target_slot, link_type = entry["target_id"], entry.get("target_slot"), entry.get("type")
        else:
            raise UIFormatError(f"malformed link{_where(prefix)}: {entry!r:.120} (expected "
                                "[id, from_node, from_slot, to_node, to_slot, type])")
        from_slot, to_slot = _slot(origin_slot), _slot(target_slot)
        if not _is_int(link_id) or from_slot is None:
            raise UIFormatError(f"malformed link{_where(prefix)}: {entry!r:.120} (id and slots must be integers)")
        links[link_id] = _Link(str(origin), from_slot, str(target), to_slot if to_slot is not None else -1,
                               _type_name(link_type))
    return links


def _check_node(raw: Any, index: int, prefix: str) -> str:
    """The node's id as a string, after checking the fields conversion relies on."""
    if not isinstance(raw, dict):
        raise UIFormatError(f"nodes[{index}]{_where(prefix)}: expected an object, got {type(raw).__name__}")
    node_id = raw.get("id")
    if not (_is_int(node_id) or (isinstance(node_id, str) and node_id)):
        raise UIFormatError(f"nodes[{index}]{_where(prefix)}: missing or invalid 'id'")
    uid = prefix + str(node_id)
    if not isinstance(raw.get("type"), str) or not raw["type"]:
        raise UIFormatError(f"node {uid}: missing or invalid 'type'", uid)
    if raw.get("mode") is not None and not _is_int(raw["mode"]):
        raise UIFormatError(f"node {uid} ({raw['type']}): 'mode' must be an integer", uid)
    for key in ("inputs", "outputs"):
        if raw.get(key) is not None and not isinstance(raw[key], list):
            raise UIFormatError(f"node {uid} ({raw['type']}): '{key}' must be a list", uid)
    values = raw.get("widgets_values")
    if values is not None and not isinstance(values, (list, dict)):
        raise UIFormatError(f"node {uid} ({raw['type']}): 'widgets_values' must be a list or an object, "
                            f"got {type(values).__name__}", uid)
    return uid


def _input_entries(raw: dict, uid: str) -> list[tuple[str, str, bool, Any]]:
    """(name, type, is_widget, link id) for each entry of a node's `inputs`."""
    entries = []
    for i, entry in enumerate(raw.get("inputs") or []):
        if not isinstance(entry, dict):
            raise UIFormatError(f"node {uid} ({raw['type']}): inputs[{i}] must be an object", uid)
        widget = entry.get("widget")
        name = widget.get("name") if isinstance(widget, dict) and isinstance(widget.get("name"), str) \
            else entry.get("name")
        if not isinstance(name, str):
            raise UIFormatError(f"node {uid} ({raw['type']}): inputs[{i}] has no name", uid)
        link = entry.get("link")
        if link is not None and not _is_int(link):
            raise UIFormatError(f"node {uid} ({raw['type']}): input {name!r} has a non-integer link {link!r}", uid)
        entries.append((name, _type_name(entry.get("type")), isinstance(widget, dict), link))
    return entries


def _output_types(raw: dict, uid: str) -> list[str]:
    types = []
    for i, entry in enumerate(raw.get("outputs") or []):
        if not isinstance(entry, dict):
            raise UIFormatError(f"node {uid} ({raw['type']}): outputs[{i}] must be an object", uid)
        types.append(_type_name(entry.get("type")))
    return types


def collect_definitions(ui: dict) -> dict[str, dict]:
    """Subgraph definitions by id, from `definitions.subgraphs` at every level."""
    found: dict[str, dict] = {}
    pending = [ui]
    while pending:
        container = pending.pop()
        definitions = container.get("definitions")
        if definitions is None:
            continue
        if not isinstance(definitions, dict):
            raise UIFormatError("'definitions' must be an object")
        subgraphs = definitions.get("subgraphs") or []
        if not isinstance(subgraphs, list):
            raise UIFormatError("'definitions.subgraphs' must be a list")
        for sub in subgraphs:
            if not isinstance(sub, dict) or not isinstance(sub.get("id"), str):
                raise UIFormatError(f"subgraph definition without a string 'id': {sub!r:.80}")
            if not isinstance(sub.get("nodes"), list):
                raise UIFormatError(f"subgraph definition {sub['id']}: 'nodes' must be a list")
            found.setdefault(sub["id"], sub)
            pending.append(sub)
    return found


class _Flattener:
    def __init__(self, definitions: dict[str, dict]) -> None:
        self.definitions = definitions
        self.nodes: dict[str, UINode] = {}

    def add_graph(self, graph: dict, prefix: str, stack: tuple[str, ...]) -> tuple[dict[int, _Link], dict]:
        """Add one graph's nodes (prefix "" for the root); returns its link table and its own nodes."""
        links = parse_links(graph.get("links"), prefix)
        raws = graph.get("nodes")
        if not isinstance(raws, list):
            raise UIFormatError(f"'nodes'{_where(prefix)} must be a list")
        present: dict[str, dict] = {}
        for index, raw in enumerate(raws):
            uid = _check_node(raw, index, prefix)
            if uid in present:
                raise UIFormatError(f"node {uid}: the id is used by two nodes", uid)
            present[uid] = raw
        for uid, raw in present.items():
            node = UINode(uid=uid, type=raw["type"], mode=raw.get("mode") or 0,
                          title=raw.get("title") if isinstance(raw.get("title"), str) else None,
                          output_types=_output_types(raw, uid), widgets_values=raw.get("widgets_values"))
            for name, in_type, is_widget, link_id in _input_entries(raw, uid):
                edge = self._edge(links.get(link_id) if link_id is not None else None, prefix, present)
                node.inputs.append(UIInput(name, in_type, is_widget, edge))
            self.nodes[uid] = node
            if len(self.nodes) > MAX_FLAT_NODES:
                raise UIFormatError(f"node {uid}: expanding subgraphs gives more than {MAX_FLAT_NODES} nodes", uid)
            if node.type in self.definitions:
                node.role = INSTANCE
                if node.mode not in (MUTED, BYPASSED):
                    self._expand(node, stack)
        return links, present

    @staticmethod
    def _edge(link: _Link | None, prefix: str, present: dict[str, dict]) -> Edge | None:
        if link is None:
            return None
        if prefix and link.origin == str(SUBGRAPH_INPUT_NODE):
            return Edge(f"{prefix}{SUBGRAPH_INPUT_NODE}", link.origin_slot, link.type)
        origin = prefix + link.origin
        return Edge(origin if origin in present else None, link.origin_slot, link.type)

    def _expand(self, instance: UINode, stack: tuple[str, ...]) -> None:
        definition = self.definitions[instance.type]
        if instance.type in stack:
            raise UIFormatError(f"node {instance.uid}: subgraph {instance.type} contains itself", instance.uid)
        if len(stack) >= MAX_SUBGRAPH_DEPTH:
            raise UIFormatError(f"node {instance.uid}: subgraphs nested more than {MAX_SUBGRAPH_DEPTH} deep",
                                instance.uid)
        prefix = instance.uid + ":"
        sub_inputs = _io_list(definition, "inputs", instance.uid)
        sub_outputs = _io_list(definition, "outputs", instance.uid)
        links, present = self.add_graph(definition, prefix, stack + (instance.type,))

        # Output side: the instance's output k is whatever the definition links to -20 slot k.
        instance.inner_outputs = [None] * len(sub_outputs)
        for link_id in sorted(links):
            link = links[link_id]
            if link.target == str(SUBGRAPH_OUTPUT_NODE) and 0 <= link.target_slot < len(sub_outputs):
                instance.inner_outputs[link.target_slot] = self._edge(link, prefix, present)

        # Input side: the boundary's output k is the instance's input for the definition's input k.
        boundary = UINode(uid=f"{prefix}{SUBGRAPH_INPUT_NODE}", type="(subgraph inputs)", role=BOUNDARY)
        widget_like = _widget_like_inputs(len(sub_inputs), [self.nodes[uid] for uid in present], prefix)
        by_name = {inp.name: inp for inp in reversed(instance.inputs)}
        same_length = len(instance.inputs) == len(sub_inputs)
        for k, (name, in_type) in enumerate(sub_inputs):
            outer = by_name.get(name) or (instance.inputs[k] if same_length else None)
            boundary.inputs.append(UIInput(name, in_type, widget_like[k] or bool(outer and outer.is_widget),
                                           outer.edge if outer else None))
        _apply_instance_widgets(instance, boundary)
        self.nodes[boundary.uid] = boundary


def _io_list(definition: dict, key: str, uid: str) -> list[tuple[str, str]]:
    entries = definition.get(key) or []
    if not isinstance(entries, list):
        raise UIFormatError(f"node {uid}: subgraph {definition['id']} '{key}' must be a list", uid)
    result = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise UIFormatError(f"node {uid}: subgraph {definition['id']} {key}[{i}] has no name", uid)
        result.append((entry["name"], _type_name(entry.get("type"))))
    return result


def _widget_like_inputs(count: int, inner: list[UINode], prefix: str) -> list[bool]:
    """Which of a definition's inputs feed an inner widget (those get a widget on the instance)."""
    flags = [False] * count
    for node in inner:
        for inp in node.inputs:
            edge = inp.edge
            if inp.is_widget and edge and edge.origin == f"{prefix}{SUBGRAPH_INPUT_NODE}" \
                    and 0 <= edge.slot < len(flags):
                flags[edge.slot] = True
    return flags


def _apply_instance_widgets(instance: UINode, boundary: UINode) -> None:
    """Values the instance holds for its widget inputs (used when nothing is linked to them).

    Front ends up to ~1.24 store them positionally, one per widget-like definition input; newer
    ones promote the inner widgets instead and leave the values on the inner nodes. A list of any
    other length is not trusted: the inner nodes' own values then apply.
    """
    values = instance.widgets_values
    if isinstance(values, dict):
        for inp in boundary.inputs:
            if inp.name in values:
                inp.has_value, inp.value = True, values[inp.name]
        return
    widget_inputs = [inp for inp in boundary.inputs if inp.is_widget]
    if isinstance(values, list) and values and len(values) == len(widget_inputs):
        for inp, value in zip(widget_inputs, values):
            inp.has_value, inp.value = True, value


def flatten(ui: dict) -> dict[str, UINode]:
    """Every node of the workflow, subgraph instances expanded, keyed by execution id."""
    flattener = _Flattener(collect_definitions(ui))
    flattener.add_graph(ui, "", ())
    return flattener.nodes
