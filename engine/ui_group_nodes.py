"""ComfyUI's legacy group nodes (`workflow>NAME`, before front end 1.2.63 `workflow/NAME`) expanded.

A group node's definition lives in the workflow's `extra.groupNodes[NAME]`: the inner nodes as
copied (position = inner index), their links `[from index | null, from slot, to index, to slot,
original from id, type]` (null: fed from outside when the group was made), `external` (which
inner outputs also fed the outside) and an optional per-node `config` of renamed or hidden slots.
The front end derives the group's interface from that, and we derive it the same way:

- inputs: each inner node's link inputs not fed from inside, in inner order; then every inner
  widget converted to an input and not fed from inside, in inner order;
- widgets: each inner node's widgets in declaration order (seed control and upload values
  included), then the converted widgets; the instance's `widgets_values` follow this order and
  override the inner nodes' own values;
- outputs: each inner output not linked inside, or listed in `external`, unless config hides it.

Each instance becomes its inner nodes with ids `"<group id>:<inner index>"` (as the front end
names them), its links rewired onto them; `engine.ui_format` then reads the result as usual.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from engine.declare import NodeDeclaration
from engine.registry import NodeRegistry
from engine.types import COMBO
from engine.ui_subgraph import BYPASSED, MAX_FLAT_NODES, MUTED, UIFormatError

GROUP_PREFIXES = ("workflow>", "workflow/")
# Inputs the front end gives a seed control even when the declaration does not ask for one.
_SEED_NAMES = frozenset({"seed", "noise_seed"})
# A primitive inside a group gets the front end's value controls: one for numbers, two for combos.
_PRIMITIVE_CONTROLS = {"INT": 1, "FLOAT": 1, COMBO: 2}


@dataclass(frozen=True)
class _GroupWidget:
    """One widget of the group node: which inner input it sets and how many values it spans."""

    name: str
    inner: int
    input: str
    count: int


@dataclass
class _GroupLayout:
    """A group definition as seen from outside, built the way the front end builds it."""

    name: str
    nodes: list[dict]
    links: list[tuple[int, int, int, int, Any]]               # internal: from, slot, to, slot, type
    sockets: list[tuple[int, int]] = field(default_factory=list)   # input k → (inner, input slot)
    widgets: list[_GroupWidget] = field(default_factory=list)
    outputs: list[tuple[int, int]] = field(default_factory=list)   # output k → (inner, output slot)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def group_name(node_type: Any) -> str | None:
    """NAME for a `workflow>NAME` or `workflow/NAME` node type, else None."""
    if isinstance(node_type, str):
        for prefix in GROUP_PREFIXES:
            if node_type.startswith(prefix):
                return node_type[len(prefix):]
    return None


def _is_widget_typed(spec: Any) -> bool:
    """The front end treats an input as a widget by its type, forceInput or not."""
    return bool(spec.is_widget or getattr(spec, "force_input", False))


class _LayoutBuilder:
    """Reads one `extra.groupNodes` entry into a `_GroupLayout`."""

    def __init__(self, name: str, data: Any, registry: NodeRegistry, skipped: frozenset[str],
                 where: str, node_id: str) -> None:
        self.registry, self.skipped, self.where, self.node_id = registry, skipped, where, node_id
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
            raise self.error(f"group node definition {name!r} has no 'nodes' list")
        nodes = data["nodes"]
        if len(nodes) > MAX_FLAT_NODES or len(data.get("links") or []) > 4 * MAX_FLAT_NODES:
            raise self.error(f"group node definition {name!r} is larger than {MAX_FLAT_NODES} nodes allow")
        for i, raw in enumerate(nodes):
            if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
                raise self.error(f"group node definition {name!r}: nodes[{i}] has no type")
        self.layout = _GroupLayout(name, nodes, self._links(name, data.get("links"), len(nodes)))
        self.linked_to = {(to, slot) for _, _, to, slot, _ in self.layout.links}
        self.linked_from = {(origin, slot) for origin, slot, _, _, _ in self.layout.links}
        self.first_type: dict[int, Any] = {}     # the type of each inner node's first link from slot 0
        for origin, slot, _, _, link_type in self.layout.links:
            if slot == 0:
                self.first_type.setdefault(origin, link_type)
        self.external = {(e[0], e[1]) for e in data.get("external") or []
                         if isinstance(e, list) and len(e) >= 2 and _is_int(e[0]) and _is_int(e[1])}
        config = data.get("config")
        self.config = config if isinstance(config, dict) else {}
        self.seen_inputs: dict[str, int] = {}

    def error(self, message: str) -> UIFormatError:
        return UIFormatError(f"{self.where}: {message}", self.node_id)

    def _links(self, name: str, raw: Any, count: int) -> list[tuple[int, int, int, int, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.error(f"group node definition {name!r}: 'links' must be a list")
        links = []
        for entry in raw:
            if not isinstance(entry, list) or len(entry) < 4:
                raise self.error(f"group node definition {name!r}: malformed link {entry!r:.80}")
            origin, origin_slot, target, target_slot = entry[:4]
            if origin is None:        # fed from outside: the instance's inputs stand for it
                continue
            if not all(_is_int(v) for v in (origin, origin_slot, target, target_slot)) \
                    or not (0 <= origin < count and 0 <= target < count):
                raise self.error(f"group node definition {name!r}: link {entry!r:.80} does not join two inner nodes")
            links.append((origin, origin_slot, target, target_slot, entry[5] if len(entry) > 5 else None))
        return links

    def _config(self, index: int, side: str, key: str) -> dict:
        entry = self.config.get(str(index))
        entry = entry.get(side) if isinstance(entry, dict) else None
        entry = entry.get(key) if isinstance(entry, dict) else None
        return entry if isinstance(entry, dict) else {}

    def _input_name(self, index: int, raw: dict, input_name: str) -> str:
        """The group's name for an inner input, made unique the front end's way."""
        custom = self._config(index, "input", input_name).get("name")
        label = next((e.get("label") for e in raw.get("inputs") or []
                      if isinstance(e, dict) and e.get("name") == input_name and e.get("label")), None)
        name = custom or label or input_name
        key = name
        if (raw["type"] == "PrimitiveNode" and raw.get("title")) or name in self.seen_inputs:
            prefix = f"{raw.get('title') or raw['type']} "
            key = name = f"{prefix}{input_name}"
            if name in self.seen_inputs:
                name = f"{prefix}{self.seen_inputs[name]} {input_name}"
        self.seen_inputs[key] = self.seen_inputs.get(key, 1) + 1
        return str(name)

    def _output_visible(self, index: int, slot: int) -> bool:
        internal = (index, slot) in self.linked_from and (index, slot) not in self.external
        visible = self._config(index, "output", str(slot)).get("visible")
        return bool(visible) if visible is not None else not internal

    def build(self) -> _GroupLayout:
        converted_later: list[tuple[int, dict, list[str], int]] = []
        for index, raw in enumerate(self.layout.nodes):
            decl = self.registry.get(raw["type"])
            if decl is not None:
                converted_later.append(self._declared(index, raw, decl))
            elif raw["type"] == "PrimitiveNode":
                self._primitive(index, raw)
            elif raw["type"] == "Reroute":
                self._reroute(index)
            elif raw["type"] not in self.skipped:
                raise self.error(f"group node {self.layout.name!r} contains node type {raw['type']!r}, "
                                 "which is not installed")
        # Widgets converted to inputs come after every node's own inputs and widgets.
        for index, raw, converted, first_slot in converted_later:
            decl = self.registry.get(raw["type"])
            for offset, input_name in enumerate(converted):
                if (index, first_slot + offset) in self.linked_to:
                    continue
                self._add_widget(index, raw, input_name, decl.inputs[input_name] if decl else None)
                self.layout.sockets.append((index, first_slot + offset))
        return self.layout

    def _add_widget(self, index: int, raw: dict, input_name: str, spec: Any) -> None:
        extra = spec.extra_widget_values if spec is not None else 0
        if input_name in _SEED_NAMES and getattr(spec, "type", None) == "INT":
            extra = max(extra, 1)
        self.layout.widgets.append(_GroupWidget(self._input_name(index, raw, input_name), index,
                                                input_name, 1 + extra))

    def _declared(self, index: int, raw: dict, decl: NodeDeclaration) -> tuple[int, dict, list[str], int]:
        entries = [e for e in raw.get("inputs") or [] if isinstance(e, dict)]
        converted_at: dict[Any, int] = {}
        for position, entry in enumerate(entries):
            widget = entry.get("widget")
            if isinstance(widget, dict) and widget.get("name") == entry.get("name"):
                converted_at.setdefault(entry.get("name"), position)
        slots = []
        for name in decl.input_order:
            spec = decl.inputs[name]
            if not _is_widget_typed(spec):
                slots.append(name)
            elif name not in converted_at:
                self._add_widget(index, raw, name, spec)
        for slot, name in enumerate(slots):
            if (index, slot) in self.linked_to:
                continue
            self._input_name(index, raw, name)
            if self._config(index, "input", name).get("visible") is not False:
                self.layout.sockets.append((index, slot))
        for slot in range(len(decl.outputs)):
            if self._output_visible(index, slot):
                self.layout.outputs.append((index, slot))
        converted = sorted((n for n in converted_at if n in decl.inputs and _is_widget_typed(decl.inputs[n])),
                           key=converted_at.__getitem__)
        return index, raw, converted, len(slots)

    def _primitive(self, index: int, raw: dict) -> None:
        """A primitive counts only when it feeds an inner node: one widget, plus its controls."""
        if index not in self.first_type:
            return
        value_type = self.first_type[index]
        self.layout.widgets.append(_GroupWidget(self._input_name(index, raw, "value"), index, "value",
                                                1 + _PRIMITIVE_CONTROLS.get(value_type, 0)))
        if self._output_visible(index, 0):
            self.layout.outputs.append((index, 0))

    def _reroute(self, index: int) -> None:
        """A reroute used only inside the group is invisible; otherwise it is an input and an output."""
        if (index, 0) in self.linked_to and (index, 0) in self.linked_from and (index, 0) not in self.external:
            return
        if (index, 0) not in self.linked_to:
            self.layout.sockets.append((index, 0))
        if self._output_visible(index, 0):
            self.layout.outputs.append((index, 0))


def _inner_widget_values(raw: dict, decl: NodeDeclaration | None, overrides: dict[str, Any]) -> Any:
    """The inner node's widget values with the instance's values laid over them."""
    values = raw.get("widgets_values")
    if not overrides:
        return copy.deepcopy(values)
    if decl is None:          # a primitive: its value comes first
        values = list(values) if isinstance(values, list) else []
        values[:1] = [overrides["value"]]
        return values
    result: dict[str, Any] = {}
    position = 0
    for name in decl.input_order:
        spec = decl.inputs[name]
        if not spec.is_widget:
            continue
        if name in overrides:
            result[name] = overrides[name]
        elif isinstance(values, list) and position < len(values):
            result[name] = values[position]
        elif isinstance(values, dict) and name in values:
            result[name] = values[name]
        position += 1 + spec.extra_widget_values
    return result


class _Expander:
    def __init__(self, ui: dict, registry: NodeRegistry, skipped: frozenset[str]) -> None:
        self.registry, self.skipped = registry, skipped
        extra = ui.get("extra")
        definitions = extra.get("groupNodes") if isinstance(extra, dict) else None
        self.definitions = definitions if isinstance(definitions, dict) else {}
        self.layouts: dict[str, _GroupLayout] = {}
        raw_links = ui.get("links")
        self.links: list[Any] = list(raw_links) if isinstance(raw_links, list) else []
        ids: list[int] = []
        for link in self.links:
            link_id = link[0] if isinstance(link, list) and link else link.get("id") if isinstance(link, dict) else None
            if isinstance(link_id, int):
                ids.append(int(link_id))
        self.next_link_id = max(ids, default=0) + 1
        self.links_from: dict[str, list[int]] = {}   # outer link positions by origin node id
        for i, link in enumerate(self.links):
            origin = link[1] if isinstance(link, list) and len(link) > 1 else \
                link.get("origin_id") if isinstance(link, dict) else None
            self.links_from.setdefault(str(origin), []).append(i)
        self.node_count = len(ui["nodes"])

    def layout(self, name: str, where: str, gid: str) -> _GroupLayout:
        if name not in self.layouts:
            if name not in self.definitions:
                known = ", ".join(repr(n) for n in list(self.definitions)[:10]) or "none"
                raise UIFormatError(f"{where}: group node {name!r} is not defined in the workflow's "
                                    f"extra.groupNodes (defined: {known})", gid)
            self.layouts[name] = _LayoutBuilder(name, self.definitions[name], self.registry,
                                                self.skipped, where, gid).build()
        return self.layouts[name]

    def expand(self, instance: dict, name: str) -> list[dict]:
        if not (_is_int(instance.get("id")) or (isinstance(instance.get("id"), str) and instance["id"])):
            raise UIFormatError(f"group node {instance['type']!r}: missing or invalid 'id'")
        gid = str(instance["id"])
        where = f"node {gid} ({instance['type']})"
        layout = self.layout(name, where, gid)
        self.node_count += len(layout.nodes) - 1
        if self.node_count > MAX_FLAT_NODES:
            raise UIFormatError(f"{where}: expanding group nodes gives more than {MAX_FLAT_NODES} nodes", gid)

        overrides: list[dict[str, Any]] = [{} for _ in layout.nodes]
        values = instance.get("widgets_values")
        position = 0
        for widget in layout.widgets:
            if isinstance(values, list) and position < len(values):
                overrides[widget.inner][widget.input] = values[position]
            position += widget.count

        inner = []
        for index, raw in enumerate(layout.nodes):
            node = {key: value for key, value in raw.items() if key not in ("index", "inputs", "widgets_values")}
            node["id"] = f"{gid}:{index}"
            node["inputs"] = [dict(e, link=None) if isinstance(e, dict) else e for e in raw.get("inputs") or []]
            node["widgets_values"] = _inner_widget_values(raw, self.registry.get(raw["type"]), overrides[index])
            inner.append(node)

        for origin, origin_slot, target, target_slot, link_type in layout.links:
            self._connect(inner[target], target_slot, self._new_link(
                [f"{gid}:{origin}", origin_slot, f"{gid}:{target}", target_slot, link_type]), where, gid)
        widgets_by_name = {w.name: w for w in layout.widgets}
        for k, entry in enumerate(instance.get("inputs") or []):
            link = entry.get("link") if isinstance(entry, dict) else None
            if link is None:
                continue
            if k < len(layout.sockets):
                target, slot = layout.sockets[k]
                self._connect(inner[target], slot, link, where, gid)
            elif isinstance(entry.get("widget"), dict) and entry["widget"].get("name") in widgets_by_name:
                widget = widgets_by_name[entry["widget"]["name"]]   # a group widget converted to an input
                self._connect_widget(inner[widget.inner], widget.input, entry, link)
        self._rewire_outputs(gid, layout)
        return inner

    def _new_link(self, fields: list[Any]) -> int:
        link_id = self.next_link_id
        self.next_link_id += 1
        self.links.append([link_id, *fields])
        return link_id

    @staticmethod
    def _connect(node: dict, slot: int, link: Any, where: str, gid: str) -> None:
        inputs = node["inputs"]
        if not (0 <= slot < len(inputs)) or not isinstance(inputs[slot], dict):
            raise UIFormatError(f"{where}: inner node {node['id']} ({node['type']}) has no input slot {slot}",
                                gid)
        inputs[slot]["link"] = link

    @staticmethod
    def _connect_widget(node: dict, input_name: str, entry: dict, link: Any) -> None:
        for inp in node["inputs"]:
            if isinstance(inp, dict) and inp.get("name") == input_name:
                inp["link"] = link
                return
        node["inputs"].append({"name": input_name, "type": entry.get("type"), "widget": {"name": input_name},
                               "link": link})

    def _rewire_outputs(self, gid: str, layout: _GroupLayout) -> None:
        """Links from output k of the instance start at the inner output it stands for."""
        for i in self.links_from.get(gid, ()):
            link = self.links[i]
            if isinstance(link, list) and len(link) >= 6 and str(link[1]) == gid and _is_int(link[2]) \
                    and 0 <= link[2] < len(layout.outputs):
                inner, slot = layout.outputs[link[2]]
                self.links[i] = [link[0], f"{gid}:{inner}", slot, *link[3:]]
            elif isinstance(link, dict) and str(link.get("origin_id")) == gid and _is_int(link.get("origin_slot")) \
                    and 0 <= link["origin_slot"] < len(layout.outputs):
                inner, slot = layout.outputs[link["origin_slot"]]
                self.links[i] = dict(link, origin_id=f"{gid}:{inner}", origin_slot=slot)


def expand_group_nodes(ui: dict, registry: NodeRegistry, skipped: frozenset[str] = frozenset()) -> dict:
    """The workflow with every active group node instance replaced by its inner nodes (a new dict).

    `skipped` are front-end-only types (notes) a group may hold and the front end ignores. Muted
    and bypassed instances are left whole: they run nothing, and a bypass passes through them.
    """
    nodes = ui.get("nodes")
    if not isinstance(nodes, list) or not any(
            isinstance(n, dict) and group_name(n.get("type")) is not None and n.get("type") not in registry
            for n in nodes):
        return ui
    expander = _Expander(ui, registry, skipped)
    expanded: list[Any] = []
    for node in nodes:
        name = group_name(node.get("type")) if isinstance(node, dict) else None
        if name is None or node["type"] in registry or node.get("mode") in (MUTED, BYPASSED):
            expanded.append(node)
        else:
            expanded.extend(expander.expand(node, name))
    return {**ui, "nodes": expanded, "links": expander.links}
