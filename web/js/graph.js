/**
 * The graph being edited, kept in ComfyUI's UI-format shapes (schema 0.4) so that saving is a
 * plain serialisation: nodes with `inputs` (sockets, including widgets converted to inputs),
 * `outputs`, positional `widgets_values`; links `{id, origin_id, origin_slot, target_id,
 * target_slot, type}`. Every edit goes through a method here and ends with a `change` event
 * (`detail.kind`: "structure", "widget", "move", "mode", "load"); views and storage listen.
 */

import { defaultWidgetValues, typesCompatible, widgetDefault } from "./nodedefs.js";

export const MODE_ACTIVE = 0;
export const MODE_MUTED = 2;
export const MODE_BYPASSED = 4;
export const DEFAULT_WIDTH = 300;

const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

export class Graph extends EventTarget {
  constructor(defs) {
    super();
    this.defs = defs;
    this.reset();
  }

  reset() {
    this.nodes = new Map();
    this.links = new Map();
    this.groups = [];
    this.lastNodeId = 0;
    this.lastLinkId = 0;
    this.config = {};
    this.extra = {};
    this.rest = {};   // top-level fields we do not interpret (models, definitions, ...), saved back as loaded
  }

  changed(kind, detail = {}) {
    if (this.batching) {
      this.pending = { kind: this.pending?.kind === "structure" ? "structure" : kind,
        touched: this.touchedBy(detail, this.pending ? this.pending.touched : []) };
      return;
    }
    // "settle" first: derived state (reroute types, reroutes.js) is fixed before views and undo see the change.
    // One detail for both: "settle" listeners may note what they changed (reroutes.js: `retyped`).
    const event = { kind, ...detail };
    this.dispatchEvent(new CustomEvent("settle", { detail: event }));
    this.dispatchEvent(new CustomEvent("change", { detail: event }));
  }

  /**
   * The ids of the nodes a batch's changes touched so far, `detail`'s added to `soFar` (a link by its
   * two ends, read now: a later edit of the batch may remove it); null once one change named none.
   */
  touchedBy(detail, soFar) {
    const { added = [], removed = [], nodes = [], links = [] } = detail;
    if (!soFar || !(added.length || removed.length || nodes.length || links.length)) return null;
    const ends = links.flatMap((id) => { const link = this.links.get(id); return link ? [link.origin_id, link.target_id] : []; });
    return [...soFar, ...added, ...nodes, ...ends];
  }

  /** Run several edits as one change (one undo step, one redraw). */
  batch(edit) {
    this.batching = (this.batching || 0) + 1;
    try {
      return edit();
    } finally {
      this.batching -= 1;
      if (!this.batching && this.pending) {
        const { kind, touched } = this.pending;
        this.pending = null;
        this.changed(kind === "widget" || kind === "move" || kind === "mode" ? kind : "structure", touched ? { touched } : {});
      }
    }
  }

  def(node) { return this.defs.get(node.type); }

  // --- nodes -------------------------------------------------------------------------------

  addNode(type, pos = [0, 0], { seedControl = "randomize" } = {}) {
    const def = this.defs.get(type);
    if (!def) throw new Error(`Unknown node type ${type}`);
    const id = ++this.lastNodeId;
    const wide = def.widgets.some((w) => w.kind === "multiline");
    const node = {
      id, type, pos: [Math.round(pos[0]), Math.round(pos[1])], size: [wide ? 400 : DEFAULT_WIDTH, 100],
      flags: {}, order: 0, mode: MODE_ACTIVE,
      inputs: def.inputs.map((input) => ({ name: input.name, type: input.type, link: null })),
      outputs: def.outputs.map((output, slot) => ({ name: output.name, type: output.type, links: [], slot_index: slot })),
      properties: { "Node name for S&R": type }, widgets_values: defaultWidgetValues(def, seedControl),
    };
    this.nodes.set(id, node);
    this.changed("structure", { added: [id] });
    return node;
  }

  /** Add a copy of a UI-format node (pasting): a fresh id, no links, at `pos`. */
  insert(raw, pos) {
    const id = ++this.lastNodeId;
    const { node } = this.normaliseNode({ ...JSON.parse(JSON.stringify(raw)), id, pos });
    for (const input of node.inputs) input.link = null;
    for (const output of node.outputs) output.links = [];
    this.nodes.set(id, node);
    this.changed("structure", { added: [id] });
    return node;
  }

  removeNodes(ids) {
    for (const id of ids) {
      const node = this.nodes.get(id);
      if (!node) continue;
      for (const input of node.inputs) if (input.link != null) this.removeLink(input.link);
      for (const output of node.outputs) for (const linkId of [...(output.links || [])]) this.removeLink(linkId);
      this.nodes.delete(id);
    }
    this.changed("structure", { removed: ids });
  }

  setTitle(node, title) {
    const def = this.def(node);
    if (!title || (def && title === def.displayName)) delete node.title;
    else node.title = title;
    this.changed("structure", { nodes: [node.id] });
  }

  title(node) { return node.title || this.def(node)?.displayName || node.type; }

  setMode(ids, mode) {
    const nodes = ids.map((id) => this.nodes.get(id)).filter(Boolean);
    const all = nodes.every((n) => n.mode === mode);
    for (const node of nodes) node.mode = all ? MODE_ACTIVE : mode;
    this.changed("mode", { nodes: ids });
  }

  moveNodes(ids, dx, dy) {
    for (const id of ids) {
      const node = this.nodes.get(id);
      if (node) node.pos = [node.pos[0] + dx, node.pos[1] + dy];
    }
  }

  // --- links -------------------------------------------------------------------------------

  /** Why `origin:slot → target:slot` cannot be connected, or null when it can. */
  refusal(originId, originSlot, targetId, targetSlot) {
    const origin = this.nodes.get(originId);
    const target = this.nodes.get(targetId);
    const output = origin?.outputs[originSlot];
    const input = target?.inputs[targetSlot];
    if (!output || !input) return "There is no such socket.";
    if (originId === targetId) return "A node cannot feed itself.";
    if (!typesCompatible(output.type, input.type)) {
      return `Cannot connect ${output.type} to “${input.name || input.type}”, which takes ${input.type}.`;
    }
    if (this.reaches(targetId, originId)) return "That link would make a cycle.";
    return null;
  }

  /** Whether `toId` is downstream of `fromId`. */
  reaches(fromId, toId) {
    const seen = new Set();
    const stack = [fromId];
    while (stack.length) {
      const id = stack.pop();
      if (id === toId) return true;
      if (seen.has(id)) continue;
      seen.add(id);
      for (const output of this.nodes.get(id)?.outputs || []) {
        for (const linkId of output.links || []) {
          const link = this.links.get(linkId);
          if (link) stack.push(link.target_id);
        }
      }
    }
    return false;
  }

  /** Connect (replacing the target's previous link); returns the link, or `{refused}`. */
  connect(originId, originSlot, targetId, targetSlot) {
    const reason = this.refusal(originId, originSlot, targetId, targetSlot);
    if (reason) return { refused: reason };
    const target = this.nodes.get(targetId);
    if (target.inputs[targetSlot].link != null) this.removeLink(target.inputs[targetSlot].link);
    const origin = this.nodes.get(originId);
    const output = origin.outputs[originSlot];
    const input = target.inputs[targetSlot];
    const link = { id: ++this.lastLinkId, origin_id: originId, origin_slot: originSlot,
      target_id: targetId, target_slot: targetSlot, type: output.type === "*" ? input.type : output.type };
    this.links.set(link.id, link);
    input.link = link.id;
    (output.links ||= []).push(link.id);
    this.changed("structure", { links: [link.id] });
    return link;
  }

  disconnectInput(nodeId, slot) {
    const input = this.nodes.get(nodeId)?.inputs[slot];
    if (!input || input.link == null) return false;
    this.removeLink(input.link);
    this.changed("structure", { nodes: [nodeId] });
    return true;
  }

  removeLink(linkId) {
    const link = this.links.get(linkId);
    if (!link) return;
    this.links.delete(linkId);
    const input = this.nodes.get(link.target_id)?.inputs[link.target_slot];
    if (input && input.link === linkId) input.link = null;
    const output = this.nodes.get(link.origin_id)?.outputs[link.origin_slot];
    if (output?.links) output.links = output.links.filter((id) => id !== linkId);
  }

  // --- widgets -----------------------------------------------------------------------------

  widget(node, name) { return this.def(node)?.widgets.find((w) => w.name === name) || null; }

  widgetValue(node, name) {
    const widget = this.widget(node, name);
    if (!widget) return undefined;
    const value = node.widgets_values[widget.index];
    return value === undefined ? widgetDefault(widget) : value;
  }

  setWidgetValue(node, name, value, { silent = false } = {}) {
    const widget = this.widget(node, name);
    if (!widget) return;
    node.widgets_values[widget.index] = value;
    if (!silent) this.changed("widget", { nodes: [node.id], widget: name });
  }

  seedControl(node, name) {
    const widget = this.widget(node, name);
    return widget?.kind === "seed" ? (node.widgets_values[widget.index + 1] || "fixed") : null;
  }

  setSeedControl(node, name, control) {
    const widget = this.widget(node, name);
    if (widget?.kind !== "seed") return;
    node.widgets_values[widget.index + 1] = control;
    this.changed("widget", { nodes: [node.id], widget: name });
  }

  /** The input slot a widget was converted into, or -1. */
  convertedSlot(node, name) { return node.inputs.findIndex((input) => input.widget?.name === name); }

  convertWidgetToInput(node, name) {
    const widget = this.widget(node, name);
    if (!widget || this.convertedSlot(node, name) >= 0) return -1;
    node.inputs.push({ name, type: widget.type, link: null, widget: { name } });
    this.changed("structure", { nodes: [node.id] });
    return node.inputs.length - 1;
  }

  convertInputToWidget(node, name) {
    const slot = this.convertedSlot(node, name);
    if (slot < 0) return;
    if (node.inputs[slot].link != null) this.removeLink(node.inputs[slot].link);
    node.inputs.splice(slot, 1);
    for (const input of node.inputs.slice(slot)) {
      const link = this.links.get(input.link);
      if (link) link.target_slot -= 1;
    }
    this.changed("structure", { nodes: [node.id] });
  }

  // --- (de)serialisation -------------------------------------------------------------------

  /** Nodes in execution order (sources first), as ComfyUI's `order` field. */
  topologicalOrder() {
    const indegree = new Map([...this.nodes.keys()].map((id) => [id, 0]));
    for (const link of this.links.values()) indegree.set(link.target_id, (indegree.get(link.target_id) || 0) + 1);
    const ready = [...indegree].filter(([, d]) => d === 0).map(([id]) => id).sort((a, b) => a - b);
    const order = [];
    while (ready.length) {
      const id = ready.shift();
      order.push(id);
      for (const output of this.nodes.get(id).outputs) {
        for (const linkId of output.links || []) {
          const target = this.links.get(linkId)?.target_id;
          if (target == null) continue;
          indegree.set(target, indegree.get(target) - 1);
          if (indegree.get(target) === 0) ready.push(target);
        }
      }
    }
    for (const id of this.nodes.keys()) if (!order.includes(id)) order.push(id);
    return order;
  }

  /** The workflow in ComfyUI's UI format, schema 0.4. */
  toJSON() {
    const order = this.topologicalOrder();
    const nodes = [...this.nodes.values()].sort((a, b) => a.id - b.id).map((node) => {
      const copy = clone(node);
      copy.order = order.indexOf(node.id);
      return copy;
    });
    const links = [...this.links.values()].sort((a, b) => a.id - b.id)
      .map((l) => [l.id, l.origin_id, l.origin_slot, l.target_id, l.target_slot, l.type]);
    return { ...clone(this.rest), last_node_id: this.lastNodeId, last_link_id: this.lastLinkId, nodes, links,
      groups: clone(this.groups), config: clone(this.config), extra: clone(this.extra), version: 0.4 };
  }

  /** Replace the graph with a UI-format workflow, repairing what older or newer files do differently. */
  load(ui) {
    this.reset();
    const { nodes = [], links = [], groups = [], config = {}, extra = {}, last_node_id: lastNode = 0,
      last_link_id: lastLink = 0, version, ...rest } = clone(ui);
    this.rest = rest;
    this.groups = Array.isArray(groups) ? groups : [];
    this.config = config || {};
    this.extra = extra || {};
    const slotMaps = new Map();
    for (const raw of nodes) {
      if (!raw || raw.id == null) continue;
      const { node, slotMap } = this.normaliseNode(raw);
      this.nodes.set(node.id, node);
      slotMaps.set(node.id, slotMap);
    }
    for (const raw of links) {
      const link = Array.isArray(raw)
        ? { id: raw[0], origin_id: raw[1], origin_slot: raw[2], target_id: raw[3], target_slot: raw[4], type: raw[5] }
        : { ...raw };
      if (!link || link.id == null) continue;
      link.target_slot = slotMaps.get(link.target_id)?.get(link.target_slot) ?? -1;
      const input = this.nodes.get(link.target_id)?.inputs[link.target_slot];
      const output = this.nodes.get(link.origin_id)?.outputs[link.origin_slot];
      if (!input || !output) continue;   // a dangling link: drop it
      input.link = link.id;
      if (!output.links.includes(link.id)) output.links.push(link.id);
      this.links.set(link.id, link);
    }
    for (const node of this.nodes.values()) {
      for (const input of node.inputs) if (input.link != null && !this.links.has(input.link)) input.link = null;
      for (const output of node.outputs) output.links = output.links.filter((id) => this.links.get(id)?.origin_id === node.id);
    }
    this.lastNodeId = Math.max(Number(lastNode) || 0, ...[...this.nodes.keys()].map(Number), 0);
    this.lastLinkId = Math.max(Number(lastLink) || 0, ...[...this.links.keys()].map(Number), 0);
    this.changed("load");
  }

  normaliseNode(raw) {
    const def = this.defs.get(raw.type);
    const node = { ...raw, id: Number(raw.id), pos: toPair(raw.pos, [0, 0]), size: toPair(raw.size, [DEFAULT_WIDTH, 100]),
      flags: raw.flags || {}, mode: raw.mode ?? MODE_ACTIVE, properties: raw.properties || {} };
    const slotMap = new Map();
    const inputs = [];
    (raw.inputs || []).forEach((input, i) => {
      // Newer ComfyUI files list every widget as an input; only the linked ones are sockets here.
      const isWidget = input.widget && def?.widgets.some((w) => w.name === input.widget.name);
      if (isWidget && input.link == null) return;
      slotMap.set(i, inputs.length);
      const copy = { ...input };
      if (def && !isWidget) delete copy.widget;
      inputs.push(copy);
    });
    for (const input of def?.inputs || []) {
      if (!inputs.some((i) => i.name === input.name && !i.widget)) inputs.push({ name: input.name, type: input.type, link: null });
    }
    node.inputs = inputs;
    node.outputs = (raw.outputs || def?.outputs || []).map((output, slot) => ({
      ...output, name: output.name ?? "", type: output.type, links: Array.isArray(output.links) ? [...output.links] : [],
      slot_index: slot }));
    if (def && !def.frontendOnly) {
      for (let slot = node.outputs.length; slot < def.outputs.length; slot++) {
        node.outputs.push({ name: def.outputs[slot].name, type: def.outputs[slot].type, links: [], slot_index: slot });
      }
    }
    node.widgets_values = def ? widgetList(raw.widgets_values, def) : (raw.widgets_values ?? []);
    return { node, slotMap };
  }
}

function toPair(value, fallback) {
  if (Array.isArray(value) && value.length >= 2) return [Number(value[0]) || 0, Number(value[1]) || 0];
  if (value && typeof value === "object" && "0" in value) return [Number(value[0]) || 0, Number(value[1]) || 0];
  return [...fallback];
}

/** A `widgets_values` in the positional layout: a dict by name or a short list is completed from defaults. */
function widgetList(values, def) {
  const defaults = defaultWidgetValues(def, "fixed");
  if (Array.isArray(values)) {
    return defaults.map((value, i) => (i < values.length ? values[i] : value)).concat(values.slice(defaults.length));
  }
  if (values && typeof values === "object") {
    for (const widget of def.widgets) if (widget.name in values) defaults[widget.index] = values[widget.name];
    if (values.control_after_generate) {
      const seed = def.widgets.find((w) => w.kind === "seed");
      if (seed) defaults[seed.index + 1] = values.control_after_generate;
    }
  }
  return defaults;
}
