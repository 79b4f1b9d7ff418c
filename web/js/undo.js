/**
 * Undo/redo as a stack of document snapshots: the workflow's name and its JSON text without the
 * viewport (panning and zooming are not steps). Only document state is in a snapshot, never what
 * the view measures or shows (drawn sizes, images, errors), so a run never breaks the history.
 * Simple and exact; restoring one applies it as a diff (`applySnapshot`), so an undo on a big
 * graph touches only the nodes the step changed.
 */

export const UNDO_LIMIT = 100;

export class UndoStack {
  constructor(limit = UNDO_LIMIT) {
    this.limit = limit;
    this.reset(null);
  }

  reset(snapshot) {
    this.past = [];
    this.future = [];
    this.current = snapshot;
  }

  /** Note the state after an edit; an unchanged state records nothing. */
  record(snapshot) {
    if (snapshot === this.current) return false;
    if (this.current !== null) this.past.push(this.current);
    if (this.past.length > this.limit) this.past.shift();
    this.current = snapshot;
    this.future = [];
    return true;
  }

  undo() {
    if (!this.past.length) return null;
    this.future.push(this.current);
    this.current = this.past.pop();
    return this.current;
  }

  redo() {
    if (!this.future.length) return null;
    this.past.push(this.current);
    this.current = this.future.pop();
    return this.current;
  }
}

/** The snapshot of a named UI-format workflow: everything but the viewport. */
export function snapshotOf(workflow, name = "Untitled") {
  const { extra = {}, ...rest } = workflow;
  const { ds, ...extraRest } = extra;
  return JSON.stringify({ name, workflow: { ...rest, extra: extraRest } });
}

/**
 * The snapshot of the graph as it is: the text `snapshotOf(graph.toJSON(), name)` gives, written
 * without toJSON's deep copy of every node (an edit on a big graph records one of these).
 */
export function snapshotOfGraph(graph, name = "Untitled") {
  const order = new Map(graph.topologicalOrder().map((id, index) => [id, index]));
  const nodes = [...graph.nodes.values()].sort((a, b) => a.id - b.id).map((node) => ({ ...node, order: order.get(node.id) }));
  const links = [...graph.links.values()].sort((a, b) => a.id - b.id)
    .map((l) => [l.id, l.origin_id, l.origin_slot, l.target_id, l.target_slot, l.type]);
  const { ds, ...extra } = graph.extra;
  return JSON.stringify({ name, workflow: { ...graph.rest, last_node_id: graph.lastNodeId, last_link_id: graph.lastLinkId,
    nodes, links, groups: graph.groups, config: graph.config, version: 0.4, extra } });
}

/** `{name, workflow}` back from a snapshot. */
export function parseSnapshot(snapshot) {
  return JSON.parse(snapshot);
}

/**
 * Bring `graph` back to a workflow it serialised itself (an undo snapshot's) as a diff: a node whose
 * JSON is unchanged keeps its object, and so its drawn element; the others are replaced or removed;
 * links, groups and the rest are taken whole. One "load" change names the nodes that differ
 * (`only`), so the view looks at those alone. The viewport (`extra.ds`) is left as it is.
 */
export function applySnapshot(graph, workflow) {
  const { nodes = [], links = [], groups = [], config = {}, extra = {}, last_node_id: lastNode = 0,
    last_link_id: lastLink = 0, version, ...rest } = workflow;
  const wanted = new Map(nodes.map((raw) => [Number(raw.id), raw]));
  const only = [];
  for (const id of [...graph.nodes.keys()]) {
    if (!wanted.has(id)) { graph.nodes.delete(id); only.push(id); }
  }
  for (const [id, raw] of wanted) {
    const node = graph.nodes.get(id);
    // Serialised as toJSON does (a copy with its `order`): equal text, equal node.
    if (node && JSON.stringify({ ...node, order: raw.order }) === JSON.stringify(raw)) continue;
    graph.nodes.set(id, raw);
    only.push(id);
  }
  graph.links = new Map(links.map(([id, originId, originSlot, targetId, targetSlot, type]) => [id,
    { id, origin_id: originId, origin_slot: originSlot, target_id: targetId, target_slot: targetSlot, type }]));
  graph.groups = groups;
  graph.config = config;
  graph.extra = { ...extra, ...(graph.extra.ds ? { ds: graph.extra.ds } : {}) };
  graph.rest = rest;
  graph.lastNodeId = lastNode;
  graph.lastLinkId = lastLink;
  graph.changed("load", { only });
  return only;
}

/**
 * The only nodes whose drawing a change can alter, or null for "look at them all": an added node,
 * the two ends of a new link, the nodes an edit names, and the Reroutes it retyped. Adding or
 * deleting a node on a big graph then costs the view one node, not a signature of every node.
 */
export function touchedNodes(graph, kind, { added = null, removed = null, links = null, nodes = null, touched = null,
  retyped = [] }) {
  if (kind === "mode" && nodes) return nodes;
  if (kind !== "structure") return null;
  if (touched) return [...touched, ...retyped];   // a batch's (Graph.touchedBy)
  if (added || removed) return [...(added || []), ...retyped];
  if (links) {
    return [...links.flatMap((id) => { const link = graph.links.get(id); return link ? [link.origin_id, link.target_id] : []; }),
      ...retyped];
  }
  if (nodes) return [...nodes, ...retyped];
  return null;
}
