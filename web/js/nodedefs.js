/**
 * Node definitions from `/object_info`: which inputs are sockets and which are widgets, the
 * layout of `widgets_values` (ComfyUI's positional list), outputs, and socket type rules.
 *
 * A widget input is an INT, FLOAT, STRING or BOOLEAN, or a combo (its type is the list of
 * choices, or "COMBO" with `options`), unless declared `forceInput`. In `widgets_values` a
 * seed-like INT (`control_after_generate`) is followed by its control mode, an upload combo
 * (`image_upload`) by the value "image": ComfyUI's layout, which the server's converter reads.
 */

export const SEED_CONTROLS = ["fixed", "increment", "decrement", "randomize"];
const SCALAR_KINDS = { INT: "number", FLOAT: "number", STRING: "text", BOOLEAN: "toggle" };

/** Editor-only node types ComfyUI files use; the server's converter resolves or ignores them. */
const FRONTEND_DEFS = {
  Note: { widgets: [{ name: "text", kind: "multiline", type: "STRING", options: { default: "" } }] },
  MarkdownNote: { widgets: [{ name: "text", kind: "multiline", type: "STRING", options: { default: "" } }] },
  Reroute: { inputs: [{ name: "", type: "*" }], outputs: [{ name: "", type: "*" }] },
  PrimitiveNode: { outputs: [{ name: "connect to widget input", type: "*" }],
    widgets: [{ name: "value", kind: "text", type: "*", options: { default: "" } }] },
};

function widgetOf(name, spec) {
  const [type, options = {}] = Array.isArray(spec) ? spec : [spec];
  if (options.forceInput) return null;
  if (Array.isArray(type)) return { name, kind: "combo", type: "COMBO", options: { ...options, choices: type } };
  if (type === "COMBO") return { name, kind: "combo", type: "COMBO", options: { ...options, choices: options.options || [] } };
  const kind = SCALAR_KINDS[type];
  if (!kind) return null;
  const widget = { name, kind, type, options };
  if (type === "STRING" && options.multiline) widget.kind = "multiline";
  if (type === "INT" && options.control_after_generate) widget.kind = "seed";
  return widget;
}

function extraValues(widget) {
  return (widget.kind === "seed" || widget.options.image_upload) ? 1 : 0;
}

/** One node type, from its `/object_info` entry. */
export function defineNode(type, info) {
  const inputs = [];
  const widgets = [];
  for (const group of ["required", "optional"]) {
    const specs = (info.input && info.input[group]) || {};
    const order = (info.input_order && info.input_order[group]) || Object.keys(specs);
    for (const name of order) {
      if (!(name in specs)) continue;
      const widget = widgetOf(name, specs[name]);
      if (widget) {
        widget.optional = group === "optional";
        widgets.push(widget);
      } else {
        const [socketType, options = {}] = specs[name];
        inputs.push({ name, type: Array.isArray(socketType) ? "COMBO" : socketType, optional: group === "optional",
          tooltip: options.tooltip });
      }
    }
  }
  let position = 0;
  for (const widget of widgets) {
    widget.index = position;
    position += 1 + extraValues(widget);
  }
  const outputs = (info.output || []).map((outputType, i) => ({
    name: (info.output_name && info.output_name[i]) || outputType, type: outputType,
    isList: Boolean(info.output_is_list && info.output_is_list[i]), tooltip: info.output_tooltips?.[i],
  }));
  return {
    type, displayName: info.display_name || info.name || type, category: info.category || "",
    description: info.description || "", outputNode: Boolean(info.output_node), inputs, widgets, outputs,
    valueCount: position, known: true, deprecated: Boolean(info.deprecated), experimental: Boolean(info.experimental),
  };
}

function frontendDef(type, spec) {
  const widgets = (spec.widgets || []).map((w, index) => ({ ...w, index }));
  return { type, displayName: type, category: "utils", description: "", outputNode: false,
    inputs: spec.inputs || [], outputs: spec.outputs || [], widgets, valueCount: widgets.length,
    known: true, frontendOnly: true };
}

/** Every node type of an `/object_info` answer, by class name. */
export class NodeDefs {
  constructor(objectInfo) {
    this.byType = new Map();
    for (const [type, info] of Object.entries(objectInfo || {})) this.byType.set(type, defineNode(type, info));
    for (const [type, spec] of Object.entries(FRONTEND_DEFS)) {
      if (!this.byType.has(type)) this.byType.set(type, frontendDef(type, spec));
    }
  }

  get(type) { return this.byType.get(type) || null; }

  /** The types the palette offers (front-end helpers last). */
  list() {
    return [...this.byType.values()].sort((a, b) =>
      (a.frontendOnly ? 1 : 0) - (b.frontendOnly ? 1 : 0) || a.category.localeCompare(b.category)
      || a.displayName.localeCompare(b.displayName));
  }
}

/** The default value of a widget: the declared default, or a combo's first choice. */
export function widgetDefault(widget) {
  const { options } = widget;
  if (options.default !== undefined) return options.default;
  if (widget.kind === "combo") return options.choices?.[0] ?? "";
  if (widget.kind === "toggle") return false;
  if (widget.kind === "number" || widget.kind === "seed") return Math.max(0, options.min ?? 0);
  return "";
}

/** A fresh `widgets_values` list for a definition (seed controls `seedControl`). */
export function defaultWidgetValues(def, seedControl = "randomize") {
  const values = [];
  for (const widget of def.widgets) {
    values.push(widgetDefault(widget));
    if (widget.kind === "seed") values.push(seedControl);
    else if (widget.options.image_upload) values.push("image");
  }
  return values;
}

/** Whether an output of type `from` may feed an input of type `to` ("*" and "A,B" lists as ComfyUI). */
export function typesCompatible(from, to) {
  if (from === "*" || to === "*" || from === "" || to === "") return true;
  const a = String(from).split(",");
  const b = String(to).split(",");
  return a.some((t) => b.includes(t));
}

const TYPE_COLOURS = {
  MODEL: "#b39ddb", CLIP: "#ffd54f", VAE: "#ef6f6f", CONDITIONING: "#ffa94d", LATENT: "#f48fb1",
  IMAGE: "#64b5f6", MASK: "#81c784", INT: "#7dc9c4", FLOAT: "#7dc9c4", STRING: "#9ccc65", BOOLEAN: "#7dc9c4",
  COMBO: "#7dc9c4", CLIP_VISION: "#a1887f", CONTROL_NET: "#4db6ac", UPSCALE_MODEL: "#ba68c8", "*": "#bbbbbb",
};

/** A socket/link colour for a type: fixed for the common types, derived from the name otherwise. */
export function typeColour(type) {
  if (TYPE_COLOURS[type]) return TYPE_COLOURS[type];
  let hash = 0;
  for (const ch of String(type)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 55% 65%)`;
}
