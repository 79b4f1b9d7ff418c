"""Use Everywhere's broadcasts (chrisgoringe/cg-use-everywhere) turned into real links of a UI-format graph.

In ComfyUI the pack's browser code links each unconnected input to the best-matching broadcast
just before a prompt is queued, so its workflows cannot run headless. We apply the same rules
here, on UI data only, before conversion; the UE nodes themselves are virtual and never emitted.

Rules (the pack's `add_ue_from_node`, `UseEverywhere.matches` and `find_best_match`):
- Each live UE node broadcasts what feeds its inputs: `Anything Everywhere` (priority 2) and
  `Anything Everywhere3` (each input, 2) to every input of that type; `Anything Everywhere?` (10)
  only to nodes whose title matches `title_regex` and inputs whose name (label first) matches
  `input_regex`, in groups whose title matches `group_regex`; `Prompts Everywhere` (5) its two
  inputs to inputs named like positive / negative; `Seed Everywhere` (5) its own seed to inputs
  named like seed.
- Group restriction (`properties.group_restricted`: 1 in, 2 not in the UE node's groups) adds 0.1
  to the priority, colour restriction (`color_restricted`: 1 same, 2 other colour) 0.3, and
  `properties.priority_boost` its value. Pack version 7 nodes keep these in `properties.ue_properties`,
  with their own priorities (10, +10 Seed/Prompts, +20 a regex, +3 group, +6 colour, or `priority`).
- Candidates are unconnected inputs of live (not muted or bypassed) non-UE nodes, except nodes
  with `properties.rejects_ue_links`. Where UE nodes carry `ue_properties` (pack ≥ 6), widget inputs
  take part only when opted in (`widget_ue_connectable`) and plain inputs may opt out
  (`input_ue_unconnectable`); older files list only converted widgets as inputs, all of which take part.
- The highest priority wins; a tie for the highest leaves the input unconnected, as the pack does.
- Version 7 also lets any node broadcast its own outputs (`properties.ue_convert`, minus those in
  `ue_properties.output_not_broadcasting`), and a node broadcasting one type twice sends each only to
  inputs that fit the name it is sent under (`repeated_type_rule`: 0 the same name, 1 a common start,
  2 a common end, 3 the target node's title, 4 the name as a regex; `apply_to_unrepeated` applies it
  to every type), raising its default priority by 20.

Subgraphs (the pack's `for_all_graphs`, `analyse_graph`): the top-level graph and each subgraph definition
are resolved on their own. UE nodes inside a definition broadcast within it only, what feeds them may
come from the subgraph's inputs (typed by the definition's input slot), and the definition's unlinked
outputs are candidates too (as "subgraph output node"; no group or colour rule reaches them). A
top-level broadcast never reaches inside a subgraph, except through the instance's own unlinked inputs.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from engine.ui_subgraph import (
    BYPASSED,
    MUTED,
    SUBGRAPH_INPUT_NODE,
    SUBGRAPH_OUTPUT_NODE,
    UIFormatError,
    collect_definitions,
    parse_links,
)

ANYTHING, ANYTHING3, ANYTHING_Q = "Anything Everywhere", "Anything Everywhere3", "Anything Everywhere?"
PROMPTS, SEED = "Prompts Everywhere", "Seed Everywhere"
UE_TYPES = frozenset({ANYTHING, ANYTHING3, ANYTHING_Q, PROMPTS, SEED})
# Seed Everywhere is a source of its own widget value (a constant); the others only pass links on.
UE_VIRTUAL_TYPES = UE_TYPES - {SEED}
UE_CONSTANT_TYPES = frozenset({SEED})

SEED_INPUT = r"seed|随机种"
PROMPT_INPUTS = (r"(_|\b)pos(itive|_|\b)|^prompt|正面", r"(_|\b)neg(ative|_|\b)|负面")
TITLE_BAR_HEIGHT = 30   # LiteGraph draws a node's title above its `pos`
# How the pack names a subgraph's output node when matching title regexes (display_name).
OUTPUT_NODE = {"id": SUBGRAPH_OUTPUT_NODE, "title": "subgraph output node"}


@dataclass
class Broadcast:
    """One thing a UE node sends: output `slot` of node `source`, of `type`, to inputs its rules match."""

    controller: int | str
    source: int | str
    slot: int
    type: str
    priority: float
    title_regex: re.Pattern | None = None
    input_regex: re.Pattern | None = None
    restrict_to: set | None = None
    invert_title: bool = False
    invert_input: bool = False
    name: str = ""                        # the UE input (or broadcast output) it is sent under
    repeated_rule: int | None = None      # how target names must fit `name` (see the module doc)

    def matches(self, node: dict, inp: dict) -> bool:
        if node.get("id") == self.source:
            return False
        if self.repeated_rule is not None and not _fits_name(self.repeated_rule, self.name, node, inp):
            return False
        if self.restrict_to is not None and node.get("id") not in self.restrict_to:
            return False
        if self.title_regex is not None:
            props = node.get("properties") or {}
            title = node.get("title") or props.get("Node name for S&R") or node.get("type", "")
            if bool(self.title_regex.search(str(title))) == self.invert_title:
                return False
        if self.type != inp.get("type"):
            return False
        if self.input_regex is not None:
            label = inp.get("label") or inp.get("name", "")
            if bool(self.input_regex.search(str(label))) == self.invert_input:
                return False
        return True


def _fits_name(rule: int, name: str, node: dict, inp: dict) -> bool:
    """The pack's `repeated_type_rule` requirement on a target (node, input)."""
    target = str(inp.get("label") or inp.get("name") or "")
    common = min(len(name), len(target))
    if rule == 0:
        return target == name
    if rule == 1:
        return target[:common] == name[:common]
    if rule == 2:
        return target[len(target) - common:] == name[len(name) - common:]
    if rule == 3:
        return node.get("title") == name
    if rule == 4:
        try:
            return re.search(name, target) is not None
        except re.error:
            return False
    return True


def _broadcasts_itself(node: dict) -> bool:
    """A UE node, or (pack version 7) any node converted to broadcast its own outputs."""
    return node.get("type") in UE_TYPES or bool((node.get("properties") or {}).get("ue_convert"))


def _graph_nodes(graph: dict) -> list[dict]:
    nodes = graph.get("nodes")
    return [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []


def uses_everywhere(ui: dict) -> bool:
    """Whether the workflow has a UE node, at the top level or in a subgraph definition."""
    graphs = [ui, *collect_definitions(ui).values()]
    return any(_broadcasts_itself(n) for graph in graphs for n in _graph_nodes(graph))


def resolve_use_everywhere(ui: dict) -> dict:
    """A copy of `ui` with the links Use Everywhere would add; `ui` itself when it has no UE node."""
    if not uses_everywhere(ui):
        return ui
    ui = copy.deepcopy(ui)
    subgraphs = list(collect_definitions(ui).values())
    graphs = [ui, *subgraphs]
    modern = any(_broadcasts_itself(n) and isinstance((n.get("properties") or {}).get("ue_properties"), dict)
                 for graph in graphs for n in _graph_nodes(graph))
    # New link ids are unique across the whole file, whichever graph holds the link.
    next_id = max([ui.get("last_link_id") or 0]
                  + [_link_id(entry) for graph in graphs for entry in graph.get("links") or []]) + 1
    for graph in graphs:
        next_id = _resolve_graph(graph, modern, next_id, is_subgraph=graph is not ui)
    if next_id - 1 > (ui.get("last_link_id") or 0):
        ui["last_link_id"] = next_id - 1
    return ui


def _resolve_graph(graph: dict, modern: bool, next_id: int, is_subgraph: bool) -> int:
    """Add one graph's UE links (the pack's analyse_graph); returns the next free link id."""
    nodes = _graph_nodes(graph)
    if not any(_broadcasts_itself(n) for n in nodes):
        return next_id
    by_id = {n.get("id"): n for n in nodes}
    links = parse_links(graph.get("links") or [], "")
    broadcasts = [b for n in nodes if _broadcasts_itself(n) and _live(n)
                  for b in _broadcasts(n, by_id, links, graph, nodes)]
    added = []
    for node in nodes:
        if node.get("type") in UE_TYPES or not _live(node) or (node.get("properties") or {}).get("rejects_ue_links"):
            continue
        for index, inp in enumerate(node.get("inputs") or []):
            if not isinstance(inp, dict) or _connected(inp, links, by_id) or not _connectable(node, inp, modern):
                continue
            best = _best(broadcasts, node, inp)
            if best is not None:
                added.append((best, node, index, inp))
    if is_subgraph:
        linked_outputs = {link.target_slot for link in links.values() if link.target == str(SUBGRAPH_OUTPUT_NODE)}
        for index, slot in enumerate(graph.get("outputs") or []):
            if isinstance(slot, dict) and index not in linked_outputs:
                best = _best(broadcasts, OUTPUT_NODE, slot)
                if best is not None:
                    added.append((best, OUTPUT_NODE, index, slot))
    return _add_links(graph, added, next_id, as_objects=is_subgraph) if added else next_id


def _live(node: dict) -> bool:
    return node.get("mode", 0) not in (MUTED, BYPASSED)


def _connected(inp: dict, links: dict, by_id: dict) -> bool:
    link = links.get(inp.get("link")) if inp.get("link") is not None else None
    if link is None:
        return False
    if link.origin == str(SUBGRAPH_INPUT_NODE):
        return True   # fed by the subgraph's input
    origin = _node(by_id, link.origin)
    return origin is not None and origin.get("mode", 0) != MUTED


def _node(by_id: dict, uid: str) -> dict | None:
    return by_id.get(int(uid)) if uid.lstrip("-").isdigit() and int(uid) in by_id else by_id.get(uid)


def _connectable(node: dict, inp: dict, modern: bool) -> bool:
    if not modern:
        return True
    props = (node.get("properties") or {}).get("ue_properties") or {}
    name = inp.get("name")
    if inp.get("widget"):
        return bool((props.get("widget_ue_connectable") or {}).get(name))
    return not (props.get("input_ue_unconnectable") or {}).get(name)


def _best(broadcasts: list[Broadcast], node: dict, inp: dict) -> Broadcast | None:
    matches = sorted((b for b in broadcasts if b.matches(node, inp)), key=lambda b: -b.priority)
    if not matches or (len(matches) > 1 and matches[0].priority == matches[1].priority):
        return None   # nothing, or an ambiguous tie the pack refuses to resolve
    return matches[0]


def _regex(pattern: Any) -> re.Pattern | None:
    if not isinstance(pattern, str) or pattern == "":
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UIFormatError(f"a Use Everywhere regex {pattern!r} is not valid: {exc}") from exc


def _widget(node: dict, index: int, default: Any = None) -> Any:
    values = node.get("widgets_values")
    return values[index] if isinstance(values, list) and index < len(values) else default


def _feeds(node: dict, index: int, links: dict, by_id: dict, graph: dict) -> tuple[str, int, str] | None:
    """(source id, slot, type) of what is linked to the UE node's input `index`; from a subgraph's input,
    the type is that input slot's (the pack's get_subgraph_input_type)."""
    inputs = node.get("inputs") or []
    if index >= len(inputs) or not isinstance(inputs[index], dict):
        return None
    link = links.get(inputs[index].get("link")) if inputs[index].get("link") is not None else None
    if link is None:
        return None
    link_type = link.type
    if link.origin == str(SUBGRAPH_INPUT_NODE):
        slots = graph.get("inputs") or []
        slot = slots[link.origin_slot] if link.origin_slot < len(slots) else None
        return link.origin, link.origin_slot, str(slot.get("type", link_type)) if isinstance(slot, dict) else link_type
    origin = _node(by_id, link.origin)
    if link_type in ("", "*") and origin is not None:
        outputs = origin.get("outputs") or []
        if link.origin_slot < len(outputs) and isinstance(outputs[link.origin_slot], dict):
            link_type = str(outputs[link.origin_slot].get("type", link_type))
    return link.origin, link.origin_slot, link_type


def _broadcasts(node: dict, by_id: dict, links: dict, ui: dict, nodes: list[dict]) -> list[Broadcast]:
    props = node.get("properties") or {}
    ue = props.get("ue_properties") if isinstance(props.get("ue_properties"), dict) else None
    kind = node["type"]
    # (source, slot, type, input regex, priority, index of the UE input or output it goes out under)
    sends: list[tuple[Any, int, str, str | None, int, int]] = []
    if kind not in UE_TYPES:   # ue_convert: the node's own outputs
        ue = ue if ue is not None else {}
        muted = ue.get("output_not_broadcasting") or {}
        sends += [(node["id"], i, str(out.get("type")), None, 10, i) for i, out in enumerate(node.get("outputs") or [])
                  if isinstance(out, dict) and not muted.get(out.get("name"))]
    elif kind == SEED:
        sends.append((node["id"], 0, "INT", SEED_INPUT, 5, 0))
    elif kind == PROMPTS:
        sends += [(*fed, PROMPT_INPUTS[i], 5, i) for i in range(2) if (fed := _feeds(node, i, links, by_id, ui))]
    elif kind == ANYTHING3:
        sends += [(*fed, None, 2, i) for i in range(3) if (fed := _feeds(node, i, links, by_id, ui))]
    elif kind == ANYTHING_Q:
        sends += [(*fed, None, 10, 0) for fed in [_feeds(node, 0, links, by_id, ui)] if fed]
    else:   # Anything Everywhere (in pack version 7 it takes any number of inputs)
        count = max(1, len(node.get("inputs") or [])) if ue is not None else 1
        sends += [(*fed, None, 2, i) for i in range(count) if (fed := _feeds(node, i, links, by_id, ui))]
    types = [send[2] for send in sends]
    repeated = {t for t in types if types.count(t) > 1} if ue is not None else set()
    slots = (node.get("outputs") if kind not in UE_TYPES else node.get("inputs")) or []
    result = []
    for source, slot, link_type, input_pattern, priority, index in sends:
        b = Broadcast(node["id"], _source_id(source, by_id), slot, link_type, float(priority),
                      input_regex=_regex(input_pattern))
        _apply_rules(b, node, ue, props, ui, nodes, bool(repeated))
        if ue is not None and (link_type in repeated or ue.get("apply_to_unrepeated")):
            entry = slots[index] if index < len(slots) and isinstance(slots[index], dict) else {}
            b.name = str(entry.get("label") or entry.get("name") or "")
            b.repeated_rule = int(ue.get("repeated_type_rule") or 0)
        result.append(b)
    return result


def _source_id(source: Any, by_id: dict) -> Any:
    if isinstance(source, str):
        found = _node(by_id, source)
        if found is not None:
            return found.get("id")
        return int(source) if source.lstrip("-").isdigit() else source   # e.g. -10, a subgraph's inputs
    return source


def _apply_rules(b: Broadcast, node: dict, ue: dict | None, props: dict, ui: dict, nodes: list[dict],
                 repeats_a_type: bool = False) -> None:
    """Regexes, group and colour restrictions, and priority, from the widgets (pack < 7) or ue_properties."""
    if ue is not None:
        settings = ue
        title, group = ue.get("title_regex"), ue.get("group_regex")
        if ue.get("input_regex"):
            b.input_regex = _regex(ue["input_regex"])
        b.invert_title, b.invert_input = bool(ue.get("title_regex_invert")), bool(ue.get("input_regex_invert"))
        b.title_regex = _regex(title)
    else:
        settings = props
        title, group = None, None
        if node["type"] == ANYTHING_Q:
            title, group = _widget(node, 0), _widget(node, 2)
            input_pattern = _widget(node, 1)
            # A '+' pattern targets Highway nodes only, which we do not build: it matches nothing.
            b.input_regex = re.compile(r"(?!)") if str(input_pattern or "").startswith("+") else _regex(input_pattern)
            b.title_regex = _regex(title)
    restrict: set | None = None
    group_rule, colour_rule = settings.get("group_restricted", 0), settings.get("color_restricted", 0)
    if group_rule in (1, 2):
        mine = _group_mates(node, ui, nodes)
        restrict = mine if group_rule == 1 else {n.get("id") for n in nodes} - mine
    if colour_rule in (1, 2):
        pool = restrict if restrict is not None else {n.get("id") for n in nodes}
        same = {n.get("id") for n in nodes if n.get("color") == node.get("color")}
        restrict = pool & same if colour_rule == 1 else pool - same
    if group and group != ".*":
        regex = _regex(group)
        members = {uid for g in _groups(ui) if regex is not None and regex.search(str(g.get("title", "")))
                   for uid in _inside(g, nodes)}
        restrict = members if restrict is None else restrict & members
    b.restrict_to = restrict
    if ue is not None:
        b.priority = float(ue["priority"]) if isinstance(ue.get("priority"), (int, float)) \
            else _v7_priority(node["type"], ue, repeats_a_type)
    else:
        b.priority += (0.1 if group_rule in (1, 2) else 0) + (0.3 if colour_rule in (1, 2) else 0)
        boost = props.get("priority_boost")
        if isinstance(boost, (int, float)):
            b.priority += boost


def _v7_priority(kind: str, ue: dict, repeats_a_type: bool = False) -> float:
    """The pack's `default_priority` (version 7)."""
    p = 10 + (10 if kind in (SEED, PROMPTS) else 0)
    if repeats_a_type or any(ue.get(k) and ue.get(k) != ".*" for k in ("title_regex", "input_regex", "group_regex")):
        p += 20
    p += 3 if (ue.get("group_restricted") or 0) > 0 else 0
    p += 6 if (ue.get("color_restricted") or 0) > 0 else 0
    return float(p)


def _groups(ui: dict) -> list[dict]:
    groups = ui.get("groups")
    return [g for g in groups if isinstance(g, dict)] if isinstance(groups, list) else []


def _inside(group: dict, nodes: list[dict]) -> set:
    """Nodes whose box (title bar included) overlaps the group's, as LiteGraph's recomputeInsideNodes."""
    box = group.get("bounding")
    if not (isinstance(box, list) and len(box) == 4):
        return set()
    gx, gy, gw, gh = (float(v) for v in box)
    inside = set()
    for n in nodes:
        pos, size = _pair(n.get("pos")), _pair(n.get("size"))
        if pos is None or size is None:
            continue
        x, y, w, h = pos[0], pos[1] - TITLE_BAR_HEIGHT, size[0], size[1] + TITLE_BAR_HEIGHT
        if x < gx + gw and gx < x + w and y < gy + gh and gy < y + h:
            inside.add(n.get("id"))
    return inside


def _pair(value: Any) -> tuple[float, float] | None:
    """A position or size: `[x, y]`, or `{"0": x, "1": y}` as some editors save it."""
    if isinstance(value, dict):
        value = [value.get("0"), value.get("1")]
    try:
        return float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return None


def _group_mates(node: dict, ui: dict, nodes: list[dict]) -> set:
    """Every node in any group the UE node is in."""
    mates: set = set()
    for group in _groups(ui):
        members = _inside(group, nodes)
        if node.get("id") in members:
            mates |= members
    return mates


def _add_links(graph: dict, added: list, next_id: int, as_objects: bool) -> int:
    """Append the links (objects in a subgraph definition or where the graph has them so); returns the next id."""
    links = graph.setdefault("links", [])
    as_objects = as_objects or (bool(links) and all(isinstance(entry, dict) for entry in links))
    for b, node, index, inp in added:
        if as_objects:
            links.append({"id": next_id, "origin_id": b.source, "origin_slot": b.slot, "target_id": node["id"],
                          "target_slot": index, "type": b.type})
        else:
            links.append([next_id, b.source, b.slot, node["id"], index, b.type])
        if node is OUTPUT_NODE:   # a subgraph output slot lists its links
            if isinstance(inp.get("linkIds"), list):
                inp["linkIds"].append(next_id)
        else:
            inp["link"] = next_id
        next_id += 1
    return next_id


def _link_id(entry: Any) -> int:
    raw = entry.get("id") if isinstance(entry, dict) else entry[0] if isinstance(entry, list) and entry else 0
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
