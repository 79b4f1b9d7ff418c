/**
 * One node drawn as DOM: title bar, typed sockets, widgets, progress bar, images and errors.
 *
 * The element carries `data-node-id`; sockets carry `data-slot` and `data-name` and a `.dot`
 * the link layer measures. What a run shows on a node (executing, progress, images, errors) is
 * passed in as `status` so a redraw keeps it.
 */

import { MODE_BYPASSED, MODE_MUTED } from "./graph.js";
import { typeColour } from "./nodedefs.js";
import { createWidget } from "./widgets.js";

const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
};

function socket(direction, slot, entry, label, errored) {
  const row = el("div", `socket ${direction}`);
  row.dataset.slot = String(slot);
  row.dataset.name = entry.name;
  row.dataset.type = entry.type;
  row.title = `${entry.name || entry.type}: ${entry.type}`;
  row.tabIndex = 0;   // keyboard.js: Enter picks a socket up and connects it
  row.setAttribute("role", "button");
  row.setAttribute("aria-label", `${direction === "in" ? "input" : "output"} ${label}: ${entry.type}`);
  const dot = el("span", "dot");
  dot.style.setProperty("--socket-colour", typeColour(entry.type));
  const text = el("span", "socket-label", label);
  if (direction === "in") row.append(dot, text);
  else row.append(text, dot);
  if (errored) row.classList.add("has-error");
  return row;
}

/** A PrimitiveNode holds whatever its target widget takes: edit it as that kind of value. */
function primitiveWidget(widget, value) {
  if (typeof value === "number") return { ...widget, kind: "number", type: Number.isInteger(value) ? "INT" : "FLOAT", options: { step: Number.isInteger(value) ? 1 : 0.01 } };
  if (typeof value === "boolean") return { ...widget, kind: "toggle", type: "BOOLEAN" };
  return widget;
}

/**
 * Everything a node's element is drawn from, as one string: an unchanged signature means the
 * element already on the canvas is right, so a redraw can keep it.
 */
export function nodeSignature(graph, node) {
  return JSON.stringify([node.type, graph.title(node), Boolean(graph.def(node)), node.mode, Boolean(node.flags?.collapsed),
    node.color, node.bgcolor, node.size[0], node.widgets_values,
    node.inputs.map((i) => [i.name, i.type, i.label, i.widget?.name]), node.outputs.map((o) => [o.name, o.type, o.label])]);
}

/** Build the element for `node`. `hooks`: onWidget(node, name, value, opts), onControl, onUpload, imageUrl. */
export function renderNode(graph, node, status, hooks) {
  const def = graph.def(node);
  const root = el("div", "node");
  root.dataset.nodeId = String(node.id);
  root.dataset.type = node.type;
  root.tabIndex = 0;   // keyboard.js: arrows move a focused node
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", `${graph.title(node)} (#${node.id})`);
  if (!def) root.classList.add("unknown-type");
  if (node.mode === MODE_MUTED) root.classList.add("muted");
  if (node.mode === MODE_BYPASSED) root.classList.add("bypassed");
  if (node.flags?.collapsed) root.classList.add("collapsed");
  if (node.color) root.style.setProperty("--node-title-bg", node.color);
  if (node.bgcolor) root.style.setProperty("--node-bg", node.bgcolor);
  root.style.width = `${Math.max(180, node.size[0])}px`;

  const title = el("div", "node-title");
  const titleText = el("span", "node-title-text", graph.title(node));
  title.append(el("span", "node-collapse"), titleText, el("span", "node-id", `#${node.id}`));
  title.title = def?.description || (def ? node.type : `${node.type}: this node type is not installed on the server`);
  root.append(title, el("div", "node-progress"));
  root.querySelector(".node-progress").append(el("div", "node-progress-bar"));

  const errors = status?.errors || [];
  const erroredInputs = new Set(errors.map((e) => e.input).filter(Boolean));
  const body = el("div", "node-body");
  const sockets = el("div", "node-sockets");
  const ins = el("div", "node-inputs");
  const outs = el("div", "node-outputs");
  node.inputs.forEach((input, slot) => {
    ins.append(socket("in", slot, input, input.label || input.name || input.type, erroredInputs.has(input.name)));
  });
  node.outputs.forEach((output, slot) => {
    outs.append(socket("out", slot, output, output.label || output.name || output.type, false));
  });
  sockets.append(ins, outs);
  body.append(sockets);
  if (!def) body.append(el("div", "node-warning", `Node type “${node.type}” is not available on this server.`));

  const widgets = el("div", "node-widgets");
  // An undo reloads the graph and keeps unchanged elements: edits go to the node now under this id.
  const current = () => graph.nodes.get(node.id) || node;
  for (const declared of def?.widgets || []) {
    if (graph.convertedSlot(node, declared.name) >= 0) continue;
    const widget = node.type === "PrimitiveNode" ? primitiveWidget(declared, graph.widgetValue(node, declared.name)) : declared;
    const row = createWidget(widget, {
      value: graph.widgetValue(node, widget.name),
      control: graph.seedControl(node, widget.name),
      onChange: (value, opts) => hooks.onWidget(current(), widget.name, value, opts),
      onControl: (mode) => hooks.onControl(current(), widget.name, mode),
      onUpload: widget.options.image_upload ? (file) => hooks.onUpload(current(), widget.name, file) : null,
    });
    if (erroredInputs.has(widget.name)) row.classList.add("has-error");
    widgets.append(row);
  }
  body.append(widgets);

  const imageBox = el("div", "node-images");
  body.append(imageBox);
  const errorBox = el("div", "node-errors");
  body.append(errorBox);
  root.append(body, el("div", "node-resize"));
  applyStatus(root, status, hooks);
  return root;
}

/** Show a node's run state: executing highlight, progress, images or a live preview, errors. */
export function applyStatus(root, status = {}, hooks) {
  root.classList.toggle("executing", Boolean(status.executing));
  root.classList.toggle("has-errors", Boolean(status.errors?.length));
  const progress = root.querySelector(".node-progress");
  const fraction = status.progress ? status.progress.value / Math.max(1, status.progress.max) : 0;
  progress.classList.toggle("active", Boolean(status.progress));
  progress.firstChild.style.width = `${Math.round(fraction * 100)}%`;
  progress.title = status.progress ? `${status.progress.value} / ${status.progress.max}` : "";

  const imageBox = root.querySelector(".node-images");
  const wanted = status.preview ? [status.preview] : (status.images || []).map((image) => hooks.imageUrl(image));
  const current = [...imageBox.querySelectorAll("img")].map((img) => img.getAttribute("src"));
  if (wanted.join("\n") !== current.join("\n")) {
    imageBox.replaceChildren(...wanted.map((src) => {
      const img = el("img", status.preview ? "preview-image" : "output-image");
      img.src = src;
      img.alt = status.preview ? "live preview" : "output image";
      img.draggable = false;
      return img;
    }));
  }
  imageBox.classList.toggle("single", wanted.length === 1);

  const errorBox = root.querySelector(".node-errors");
  errorBox.replaceChildren(...(status.errors || []).map((error) => {
    const line = el("div", "node-error", error.text);
    if (error.input) line.dataset.input = error.input;
    return line;
  }));
}
