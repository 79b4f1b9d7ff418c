/**
 * The canvas view: a pannable, zoomable world holding groups, nodes (DOM, see nodeview.js) and
 * links (SVG curves). Screen = (world + offset) × scale, ComfyUI's `extra.ds` convention, so a
 * saved viewport opens where it was. Pointer gestures live in pointer.js; this module draws.
 */

import { applyStatus, renderNode } from "./nodeview.js";
import { typeColour } from "./nodedefs.js";

const SVG = "http://www.w3.org/2000/svg";
export const MIN_SCALE = 0.1;
export const MAX_SCALE = 4;
/** A node's `pos` is the top-left of its body; its title bar sits above it (ComfyUI's convention). */
export const TITLE_HEIGHT = 30;

export class CanvasView extends EventTarget {
  constructor(root, graph, hooks) {
    super();
    this.root = root;
    this.graph = graph;
    this.hooks = hooks;
    this.scale = 1;
    this.offset = [0, 0];
    this.selection = new Set();
    this.status = new Map();        // node id → {executing, progress, images, preview, errors}
    this.elements = new Map();      // node id → element
    this.sockets = new Map();       // node id → {in: [[x, y]], out: [[x, y]]} relative to the node
    this.hiddenLink = null;         // a link being dragged off its input
    root.classList.add("canvas");
    root.tabIndex = 0;
    this.world = this.make("div", "world", root);
    this.groupLayer = this.make("div", "group-layer", this.world);
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.classList.add("link-layer");
    this.world.append(this.svg);
    this.nodeLayer = this.make("div", "node-layer", this.world);
    this.dragPath = document.createElementNS(SVG, "path");
    this.dragPath.classList.add("link", "dragging");
    this.selectBox = this.make("div", "select-box", root);
    this.applyTransform();
  }

  make(tag, className, parent) {
    const el = document.createElement(tag);
    el.className = className;
    parent.append(el);
    return el;
  }

  // --- viewport ----------------------------------------------------------------------------

  applyTransform() {
    const [ox, oy] = this.offset;
    this.world.style.transform = `scale(${this.scale}) translate(${ox}px, ${oy}px)`;
    this.root.style.setProperty("--grid-size", `${20 * this.scale}px`);
    this.root.style.backgroundPosition = `${ox * this.scale}px ${oy * this.scale}px`;
    this.graph.extra.ds = { scale: this.scale, offset: [...this.offset] };
  }

  setViewport(ds) {
    if (ds && Number.isFinite(ds.scale) && ds.scale > 0) {
      this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, ds.scale));
      const offset = ds.offset || [0, 0];
      this.offset = [Number(offset[0]) || 0, Number(offset[1]) || 0];
    }
    this.applyTransform();
  }

  /** World coordinates of a client (screen) point. */
  toWorld(clientX, clientY) {
    const rect = this.root.getBoundingClientRect();
    return [(clientX - rect.left) / this.scale - this.offset[0], (clientY - rect.top) / this.scale - this.offset[1]];
  }

  panBy(dx, dy) {
    this.offset = [this.offset[0] + dx / this.scale, this.offset[1] + dy / this.scale];
    this.applyTransform();
  }

  /** Zoom by `factor`, keeping the world point under (clientX, clientY) in place. */
  zoomAt(clientX, clientY, factor) {
    const [wx, wy] = this.toWorld(clientX, clientY);
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const rect = this.root.getBoundingClientRect();
    this.offset = [(clientX - rect.left) / this.scale - wx, (clientY - rect.top) / this.scale - wy];
    this.applyTransform();
  }

  /** Fit every node (or the selection) in view, never zooming in past 100%. */
  fit(ids = null) {
    const nodes = [...this.graph.nodes.values()].filter((n) => !ids || ids.has(n.id));
    if (!nodes.length) { this.setViewport({ scale: 1, offset: [0, 0] }); return; }
    const boxes = nodes.map((n) => this.nodeBox(n));
    const x0 = Math.min(...boxes.map((b) => b[0])) - 40;
    const y0 = Math.min(...boxes.map((b) => b[1])) - 40;
    const x1 = Math.max(...boxes.map((b) => b[0] + b[2])) + 40;
    const y1 = Math.max(...boxes.map((b) => b[1] + b[3])) + 40;
    const rect = this.root.getBoundingClientRect();
    const scale = Math.min(1, Math.max(MIN_SCALE, Math.min(rect.width / (x1 - x0), rect.height / (y1 - y0))));
    this.scale = scale;
    this.offset = [(rect.width / scale - (x1 - x0)) / 2 - x0, (rect.height / scale - (y1 - y0)) / 2 - y0];
    this.applyTransform();
  }

  /** [x, y, width, height] of a node in world units (its drawn size when it is drawn). */
  nodeBox(node) {
    const el = this.elements.get(node.id);
    const w = el ? el.offsetWidth : node.size[0];
    const h = el ? el.offsetHeight : node.size[1] + TITLE_HEIGHT;
    return [node.pos[0], node.pos[1] - TITLE_HEIGHT, w, h];
  }

  // --- drawing -----------------------------------------------------------------------------

  render() {
    this.nodeLayer.replaceChildren();
    this.elements.clear();
    this.sockets.clear();
    for (const node of this.graph.nodes.values()) this.nodeLayer.append(this.buildNode(node));
    for (const node of this.graph.nodes.values()) this.measure(node);
    for (const id of [...this.selection]) if (!this.graph.nodes.has(id)) this.selection.delete(id);
    this.renderGroups();
    this.drawLinks();
  }

  buildNode(node) {
    const el = renderNode(this.graph, node, this.status.get(node.id), this.hooks);
    el.style.transform = `translate(${node.pos[0]}px, ${node.pos[1] - TITLE_HEIGHT}px)`;
    el.classList.toggle("selected", this.selection.has(node.id));
    this.elements.set(node.id, el);
    return el;
  }

  /** Redraw some nodes (after an edit that changed their sockets or widgets). */
  renderNodes(ids) {
    for (const id of ids) {
      const node = this.graph.nodes.get(id);
      const old = this.elements.get(id);
      if (!node) { old?.remove(); this.elements.delete(id); continue; }
      const fresh = this.buildNode(node);
      if (old) old.replaceWith(fresh);
      else this.nodeLayer.append(fresh);
      this.measure(node);
    }
    this.drawLinks();
  }

  /**
   * Socket centres relative to the node's `pos`, in world units. The drawn size stays in the view
   * (`drawnSize`): an image or an error shown on a node is not an edit of the workflow.
   */
  measure(node) {
    const el = this.elements.get(node.id);
    if (!el) return;
    const box = el.getBoundingClientRect();
    const title = el.querySelector(".node-title").getBoundingClientRect();
    const centre = (dot, side) => {
      const r = dot.getBoundingClientRect();
      if (!r.width) return [side === "in" ? 0 : box.width / this.scale, (title.height / 2) / this.scale - TITLE_HEIGHT];
      return [(r.left + r.width / 2 - box.left) / this.scale, (r.top + r.height / 2 - box.top) / this.scale - TITLE_HEIGHT];
    };
    this.sockets.set(node.id, {
      in: [...el.querySelectorAll(".socket.in .dot")].map((d) => centre(d, "in")),
      out: [...el.querySelectorAll(".socket.out .dot")].map((d) => centre(d, "out")),
    });
  }

  /** [width, height] of a node as drawn (body only, ComfyUI's `size`), or its saved size. */
  drawnSize(node) {
    const el = this.elements.get(node.id);
    return el ? [Math.round(el.offsetWidth), Math.round(el.offsetHeight) - TITLE_HEIGHT] : [...node.size];
  }

  socketPosition(nodeId, direction, slot) {
    const node = this.graph.nodes.get(nodeId);
    const local = this.sockets.get(nodeId)?.[direction]?.[slot];
    if (!node || !local) return null;
    return [node.pos[0] + local[0], node.pos[1] + local[1]];
  }

  static curve([x1, y1], [x2, y2]) {
    const d = Math.max(40, Math.abs(x2 - x1) * 0.5);
    return `M ${x1} ${y1} C ${x1 + d} ${y1}, ${x2 - d} ${y2}, ${x2} ${y2}`;
  }

  drawLinks() {
    const paths = [];
    for (const link of this.graph.links.values()) {
      if (link.id === this.hiddenLink) continue;
      const from = this.socketPosition(link.origin_id, "out", link.origin_slot);
      const to = this.socketPosition(link.target_id, "in", link.target_slot);
      if (!from || !to) continue;
      const path = document.createElementNS(SVG, "path");
      path.classList.add("link");
      path.dataset.linkId = String(link.id);
      path.setAttribute("d", CanvasView.curve(from, to));
      path.style.stroke = typeColour(link.type);
      paths.push(path);
    }
    if (this.dragPath.isConnected || this.dragging) paths.push(this.dragPath);
    this.svg.replaceChildren(...paths);
  }

  /** Show the link being dragged between a socket and the pointer (null hides it). */
  showDragLink(from, to, type) {
    this.dragging = Boolean(from);
    if (!from) { this.dragPath.remove(); this.drawLinks(); return; }
    this.dragPath.setAttribute("d", CanvasView.curve(from, to));
    this.dragPath.style.stroke = typeColour(type);
    if (!this.dragPath.isConnected) this.svg.append(this.dragPath);
  }

  renderGroups() {
    this.groupLayer.replaceChildren(...this.graph.groups.map((group, index) => {
      const [x, y, w, h] = group.bounding || [0, 0, 200, 100];
      const el = document.createElement("div");
      el.className = "group";
      el.dataset.group = String(index);
      Object.assign(el.style, { transform: `translate(${x}px, ${y}px)`, width: `${w}px`, height: `${h}px` });
      if (group.color) el.style.setProperty("--group-colour", group.color);
      const title = document.createElement("div");
      title.className = "group-title";
      title.textContent = group.title || "Group";
      el.append(title);
      return el;
    }));
  }

  /** Move node elements to their model positions (during drags) and redraw links. */
  updatePositions(ids) {
    for (const id of ids) {
      const node = this.graph.nodes.get(id);
      const el = this.elements.get(id);
      if (node && el) el.style.transform = `translate(${node.pos[0]}px, ${node.pos[1] - TITLE_HEIGHT}px)`;
    }
    this.drawLinks();
  }

  // --- selection and run state -------------------------------------------------------------

  select(ids, { additive = false } = {}) {
    if (!additive) this.selection.clear();
    for (const id of ids) this.selection.add(id);
    this.refreshSelection();
  }

  toggle(id) {
    if (this.selection.has(id)) this.selection.delete(id);
    else this.selection.add(id);
    this.refreshSelection();
  }

  refreshSelection() {
    for (const [id, el] of this.elements) el.classList.toggle("selected", this.selection.has(id));
    this.dispatchEvent(new CustomEvent("selection", { detail: { ids: [...this.selection] } }));
  }

  /** Merge `patch` into a node's run state and show it. */
  setStatus(id, patch) {
    const key = Number(id);
    const status = { ...(this.status.get(key) || {}), ...patch };
    this.status.set(key, status);
    const el = this.elements.get(key);
    if (!el) return;
    if ("errors" in patch) {           // errors mark sockets and widgets: redraw the node
      this.renderNodes([key]);
      return;
    }
    applyStatus(el, status, this.hooks);
  }

  /** Clear one field (e.g. "errors", "executing") on every node. */
  clearStatus(field) {
    for (const [id, status] of this.status) {
      if (status[field] !== undefined) this.setStatus(id, { [field]: undefined });
    }
  }

  /** Whether a node is wholly inside the visible canvas. */
  isVisible(id) {
    const el = this.elements.get(Number(id));
    if (!el) return false;
    const box = el.getBoundingClientRect();
    const view = this.root.getBoundingClientRect();
    return box.left >= view.left && box.top >= view.top && box.right <= view.right && box.bottom <= view.bottom;
  }

  /** Centre the view on a node (used when an error names one). */
  reveal(id) {
    const node = this.graph.nodes.get(Number(id));
    if (!node) return;
    const rect = this.root.getBoundingClientRect();
    const [x, y, w, h] = this.nodeBox(node);
    this.offset = [rect.width / this.scale / 2 - (x + w / 2), rect.height / this.scale / 2 - (y + h / 2)];
    this.applyTransform();
  }
}
