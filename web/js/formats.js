/**
 * Workflow formats (ComfyUI's API and UI formats): recognising what a file holds, and API format → UI format.
 *
 * API → UI lays nodes out in columns by their depth in the graph. Widget inputs the API file
 * feeds from a link become converted inputs; seeds keep their value (control "fixed"), so a
 * loaded workflow reproduces the image it was written for.
 */

import { defaultWidgetValues } from "./nodedefs.js";

const COLUMN_WIDTH = 380;
const ROW_GAP = 40;

export function isUiFormat(data) {
  return Boolean(data) && typeof data === "object" && Array.isArray(data.nodes) && "links" in data;
}

export function isApiFormat(data) {
  if (!data || typeof data !== "object" || Array.isArray(data)) return false;
  const values = Object.values(data);
  return values.length > 0 && values.every((n) => n && typeof n === "object" && typeof n.class_type === "string");
}

const isLink = (value) => Array.isArray(value) && value.length === 2 && typeof value[1] === "number"
  && (typeof value[0] === "string" || typeof value[0] === "number");

/** A rough node height before it is drawn (for the first layout). */
function estimateHeight(def) {
  let height = 40 + 24 * Math.max(def.inputs.length, def.outputs.length);
  for (const widget of def.widgets) height += widget.kind === "multiline" ? 110 : 34;
  return height;
}

/** Column per node: longest path from a source, with sources pulled next to their first consumer. */
function columns(api) {
  const ids = Object.keys(api);
  const parents = new Map(ids.map((id) => [id, []]));
  const children = new Map(ids.map((id) => [id, []]));
  for (const id of ids) {
    for (const value of Object.values(api[id].inputs || {})) {
      if (isLink(value) && api[String(value[0])]) {
        parents.get(id).push(String(value[0]));
        children.get(String(value[0])).push(id);
      }
    }
  }
  const depth = new Map();
  const visit = (id, trail = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (trail.has(id)) return 0;
    trail.add(id);
    const d = Math.max(-1, ...parents.get(id).map((p) => visit(p, trail))) + 1;
    depth.set(id, d);
    return d;
  };
  ids.forEach((id) => visit(id));
  for (const id of ids) {
    if (parents.get(id).length === 0 && children.get(id).length) {
      depth.set(id, Math.max(0, Math.min(...children.get(id).map((c) => depth.get(c))) - 1));
    }
  }
  return depth;
}

/** An API-format workflow as a UI-format one, laid out left to right. */
export function apiToUi(api, defs) {
  const ids = Object.keys(api).sort((a, b) => (Number(a) - Number(b)) || a.localeCompare(b));
  const numeric = new Map();
  let next = Math.max(0, ...ids.map(Number).filter(Number.isInteger)) + 1;
  for (const id of ids) numeric.set(id, Number.isInteger(Number(id)) && Number(id) > 0 ? Number(id) : next++);
  const depth = columns(api);
  const columnY = new Map();
  const nodes = [];
  const links = [];
  const byId = new Map();
  // Within a column, nodes with inputs first: sources pulled in from the left sit below them.
  const isSource = (id) => Object.values(api[id].inputs || {}).some(isLink) ? 0 : 1;
  const placement = [...ids].sort((a, b) => depth.get(a) - depth.get(b) || (depth.get(a) ? isSource(a) - isSource(b) : 0)
    || numeric.get(a) - numeric.get(b));
  for (const id of placement) {
    const spec = api[id];
    const def = defs.get(spec.class_type);
    const column = depth.get(id);
    const y = columnY.get(column) ?? 60;
    const node = { id: numeric.get(id), type: spec.class_type, pos: [60 + column * COLUMN_WIDTH, y],
      size: [def?.widgets.some((w) => w.kind === "multiline") ? 340 : 300, def ? estimateHeight(def) : 80],
      flags: {}, order: 0, mode: 0, inputs: [], outputs: [], properties: { "Node name for S&R": spec.class_type },
      widgets_values: [] };
    columnY.set(column, y + node.size[1] + ROW_GAP);
    const title = spec._meta?.title;
    if (title && title !== (def?.displayName ?? spec.class_type)) node.title = title;
    const inputs = spec.inputs || {};
    if (def) {
      node.inputs = def.inputs.map((input) => ({ name: input.name, type: input.type, link: null }));
      node.outputs = def.outputs.map((output, slot) => ({ name: output.name, type: output.type, links: [], slot_index: slot }));
      node.widgets_values = defaultWidgetValues(def, "fixed");
      for (const widget of def.widgets) {
        const value = inputs[widget.name];
        if (value === undefined) continue;
        if (isLink(value)) node.inputs.push({ name: widget.name, type: widget.type, link: null, widget: { name: widget.name } });
        else node.widgets_values[widget.index] = value?.__value__ ?? value;
      }
    } else {
      // An unknown type: keep its links as sockets so the graph still reads; validation names it.
      for (const [name, value] of Object.entries(inputs)) {
        if (isLink(value)) node.inputs.push({ name, type: "*", link: null });
      }
    }
    nodes.push(node);
    byId.set(id, node);
  }
  let linkId = 0;
  for (const id of ids) {
    const node = byId.get(id);
    for (const [name, value] of Object.entries(api[id].inputs || {})) {
      if (!isLink(value)) continue;
      const origin = byId.get(String(value[0]));
      const slot = node.inputs.findIndex((input) => input.name === name);
      if (!origin || slot < 0) continue;
      while (origin.outputs.length <= value[1]) {
        origin.outputs.push({ name: "", type: "*", links: [], slot_index: origin.outputs.length });
      }
      const type = origin.outputs[value[1]].type;
      links.push([++linkId, origin.id, value[1], node.id, slot, type]);
      node.inputs[slot].link = linkId;
      origin.outputs[value[1]].links.push(linkId);
    }
  }
  return { last_node_id: Math.max(0, ...nodes.map((n) => n.id)), last_link_id: linkId, nodes, links, groups: [],
    config: {}, extra: { ds: { scale: 1, offset: [0, 0] } }, version: 0.4 };
}

/** Parse JSON text into a UI-format workflow (API format is converted); throws a readable Error. */
export function workflowFromJson(data, defs) {
  if (data && typeof data === "object" && !Array.isArray(data) && isUiFormat(data.workflow)) data = data.workflow;
  if (isUiFormat(data)) return data;
  if (isApiFormat(data)) return apiToUi(data, defs);
  if (data && typeof data === "object" && isApiFormat(data.prompt)) return apiToUi(data.prompt, defs);
  throw new Error("This file is not a workflow (neither ComfyUI's UI format nor the API format).");
}
