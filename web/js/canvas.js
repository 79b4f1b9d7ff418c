/**
 * The canvas view: a pannable, zoomable world holding groups, nodes (DOM, see nodeview.js) and
 * links (SVG curves). Screen = (world + offset) × scale, ComfyUI's `extra.ds` convention, so a
 * saved viewport opens where it was. Pointer gestures live in pointer.js; this module draws.
 *
 * Big graphs stay fast: a redraw rebuilds only the nodes whose drawn content changed (see
 * `nodeSignature`) and rewrites only the link paths that moved; pan and zoom move one transformed
 * container; nodes and links off screen are hidden (culled) and, zoomed out, nodes and links are
 * drawn on one <canvas> instead (overview.js) while their DOM stays, transparent, for hit-testing.
 */

import { applyStatus, nodeSignature, renderNode } from "./nodeview.js";
import { typeColour } from "./nodedefs.js";
import { OverviewLayer } from "./overview.js";

const SVG = "http://www.w3.org/2000/svg";
export const MIN_SCALE = 0.1;
export const MAX_SCALE = 4;
/** A node's `pos` is the top-left of its body; its title bar sits above it (ComfyUI's convention). */
export const TITLE_HEIGHT = 30;
const GRID_SIZE = 20;
/** A socket's row height (style.css `.socket`): the overview's hit-testing finds sockets by it. */
const SOCKET_ROW = 22;
/**
 * Below this zoom nodes are drawn by the overview (boxes, titles, sockets): widgets' 12 px text
 * would be under 6 px, unreadable anyway. The shipped workflows all fit above it at 1440×900.
 */
export const LOW_DETAIL_SCALE = 0.5;
/** What is drawn around the visible area, in screen pixels, so a short pan shows no gaps. */
const CULL_MARGIN = 300;
/** How long the world stays a composited layer after the viewport last moved. */
const MOVING_MS = 250;

/**
 * Put a node's element at its position. Left/top, not a transform: a transform per node gives the
 * compositor one paint chunk per node to sort through on every frame.
 */
function placeAt(el, node) {
  const left = `${node.pos[0]}px`;
  const top = `${node.pos[1] - TITLE_HEIGHT}px`;
  if (el.style.left !== left) el.style.left = left;
  if (el.style.top !== top) el.style.top = top;
}

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
    this.sizes = new Map();         // node id → [width, height] as last measured, world units
    this.details = new Map();       // node id → {rows, labels}: what the overview draws in detail (measure)
    this.signatures = new Map();    // node id → nodeSignature of the element drawn
    this.paths = new Map();         // link id → SVG path
    this.culled = new Set();        // node ids and "link:<id>" keys hidden as off screen
    this.builtWith = null;          // the status map the elements were drawn with (one per tab)
    this.hiddenLink = null;         // a link being dragged off its input
    // A node grows without a rebuild (an image loads, a textarea is resized): keep its size current.
    this.resizes = new ResizeObserver((entries) => this.resized(entries));
    this.rootSize = null;           // [width, height] of the canvas, kept by `resizes`
    root.classList.add("canvas");
    root.tabIndex = 0;
    this.grid = this.make("div", "grid", root);
    this.world = this.make("div", "world", root);
    this.groupLayer = this.make("div", "group-layer", this.world);
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.classList.add("link-layer");
    this.world.append(this.svg);
    this.nodeLayer = this.make("div", "node-layer", this.world);
    // The link being dragged has a layer of its own: it stays drawn when the overview hides the links.
    this.dragLayer = document.createElementNS(SVG, "svg");
    this.dragLayer.classList.add("link-layer", "drag-layer");
    this.world.append(this.dragLayer);
    this.dragPath = document.createElementNS(SVG, "path");
    this.dragPath.classList.add("link", "dragging");
    this.selectBox = this.make("div", "select-box", root);
    this.overview = new OverviewLayer(this, { gridSize: GRID_SIZE });
    this.resizes.observe(root);
    this.applyTransform();
  }

  make(tag, className, parent) {
    const el = document.createElement(tag);
    el.className = className;
    parent.append(el);
    return el;
  }

  // --- viewport ----------------------------------------------------------------------------

  /** `gesture`: a pan or zoom by the user, drawn by the overview until it pauses (see `setMoving`). */
  applyTransform({ gesture = false } = {}) {
    const [ox, oy] = this.offset;
    this.world.style.transform = `scale(${this.scale}) translate(${ox}px, ${oy}px)`;
    // The grid is its own layer, moved (not repainted) by a pan; one cell of travel is enough.
    const cell = GRID_SIZE * this.scale;
    const size = `${cell}px ${cell}px`;
    if (this.grid.style.backgroundSize !== size) this.grid.style.backgroundSize = size;
    const shift = (value) => (((value * this.scale) % cell) + cell) % cell - cell;
    this.grid.style.transform = `translate(${shift(ox)}px, ${shift(oy)}px)`;
    this.graph.extra.ds = { scale: this.scale, offset: [...this.offset] };
    if (gesture) {
      clearTimeout(this.movingTimer);
      this.movingTimer = setTimeout(() => this.setMoving(false), MOVING_MS);
    }
    this.setMoving(gesture || Boolean(this.moving && this.movingTimer));
    this.scheduleCull();
    this.dispatchEvent(new Event("viewport"));
  }

  /**
   * While a pan or zoom goes on, the overview draws every node (in detail at legible zooms), and the
   * DOM nodes are not rendered: Chromium repaints every node in view on each frame of a moved
   * transform, which a big graph cannot afford. When the gesture pauses the DOM comes back.
   */
  setMoving(moving) {
    if (!moving) { clearTimeout(this.movingTimer); this.movingTimer = 0; }
    this.moving = moving;
    const overview = moving || this.scale < LOW_DETAIL_SCALE;
    const wasOverview = this.overview.active;
    this.root.classList.toggle("overview", overview);
    this.root.classList.toggle("moving", moving);   // the overview draws the grid too: no re-raster per zoom step
    this.overview.detailed = this.scale >= LOW_DETAIL_SCALE;
    this.overview.setActive(overview);
    if (overview) this.overview.schedule();
    else if (wasOverview) this.cull();               // the DOM is shown again: hide what is off screen first
  }

  setViewport(ds) {
    if (ds && Number.isFinite(ds.scale) && ds.scale > 0) {
      this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, ds.scale));
      const offset = ds.offset || [0, 0];
      this.offset = [Number(offset[0]) || 0, Number(offset[1]) || 0];
    }
    this.applyTransform();
  }

  /**
   * [width, height] of the canvas in pixels, as last observed: reading it forces no layout (a cull
   * right after an edit would otherwise lay out the whole graph's DOM to learn the canvas's size).
   */
  size() {
    if (this.rootSize) return this.rootSize;
    const rect = this.root.getBoundingClientRect();
    return [rect.width, rect.height];
  }

  /** World coordinates of a client (screen) point. */
  toWorld(clientX, clientY) {
    const rect = this.root.getBoundingClientRect();
    return [(clientX - rect.left) / this.scale - this.offset[0], (clientY - rect.top) / this.scale - this.offset[1]];
  }

  panBy(dx, dy) {
    this.offset = [this.offset[0] + dx / this.scale, this.offset[1] + dy / this.scale];
    this.applyTransform({ gesture: true });
  }

  /** Zoom by `factor`, keeping the world point under (clientX, clientY) in place. */
  zoomAt(clientX, clientY, factor) {
    const [wx, wy] = this.toWorld(clientX, clientY);
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const rect = this.root.getBoundingClientRect();
    this.offset = [(clientX - rect.left) / this.scale - wx, (clientY - rect.top) / this.scale - wy];
    this.applyTransform({ gesture: true });
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

  /**
   * [x, y, width, height] of a node in world units: its drawn size as last measured (kept fresh by
   * `resizes`), so callers that look at every node (minimap, fit, box select) force no layout.
   */
  nodeBox(node) {
    const [w, h] = this.sizes.get(node.id) || [node.size[0], node.size[1] + TITLE_HEIGHT];
    return [node.pos[0], node.pos[1] - TITLE_HEIGHT, w, h];
  }

  // --- drawing -----------------------------------------------------------------------------

  /**
   * Bring the drawing up to date with the graph: build the nodes that are new or whose drawn
   * content changed (and those in `rebuild`), remove the deleted ones, redraw links that moved.
   * `only`: the ids of the only nodes that may have changed (an undo's diff names them).
   */
  render({ rebuild = [], only = null } = {}) {
    const forced = new Set(rebuild);
    if (this.builtWith !== this.status) {     // another tab's run state: redraw every node
      this.builtWith = this.status;
      for (const id of this.elements.keys()) forced.add(id);
    }
    for (const [id, el] of this.elements) {
      if (this.graph.nodes.has(id)) continue;
      el.remove();
      this.forget(id);
    }
    const built = [];
    const candidates = only
      ? [...new Set([...only, ...forced])].map((id) => this.graph.nodes.get(id)).filter(Boolean) : this.graph.nodes.values();
    for (const node of candidates) {
      if (!forced.has(node.id) && this.signatures.get(node.id) === nodeSignature(this.graph, node)) this.place(node);
      else built.push(this.rebuild(node));
    }
    for (const node of built) this.measure(node);     // one layout for all of them
    for (const id of [...this.selection]) if (!this.graph.nodes.has(id)) this.selection.delete(id);
    this.renderGroups();
    this.drawLinks();
    this.cull();
  }

  /** Draw a node afresh in place of its element (or as a new one); returns the node. */
  rebuild(node) {
    this.signatures.set(node.id, nodeSignature(this.graph, node));
    const old = this.elements.get(node.id);
    const fresh = this.buildNode(node);
    if (old) { this.resizes.unobserve(old); old.replaceWith(fresh); }
    else this.nodeLayer.append(fresh);
    return node;
  }

  forget(id) {
    const el = this.elements.get(id);
    if (el) this.resizes.unobserve(el);
    this.elements.delete(id);
    this.sockets.delete(id);
    this.sizes.delete(id);
    this.details.delete(id);
    this.signatures.delete(id);
    this.culled.delete(id);
  }

  resized(entries) {
    for (const entry of entries) {
      const box = entry.borderBoxSize?.[0];
      if (entry.target === this.root) { this.rootSize = box ? [box.inlineSize, box.blockSize] : null; continue; }
      const id = Number(entry.target.dataset.nodeId);
      if (!box || this.elements.get(id) !== entry.target) continue;
      this.sizes.set(id, [box.inlineSize, box.blockSize]);   // CSS pixels of the untransformed node: world units
    }
    this.scheduleCull();
  }

  buildNode(node) {
    const el = renderNode(this.graph, node, this.status.get(node.id), this.hooks);
    placeAt(el, node);
    el.classList.toggle("selected", this.selection.has(node.id));
    this.culled.delete(node.id);
    this.elements.set(node.id, el);
    this.resizes.observe(el, { box: "border-box" });
    return el;
  }

  /** Bring a kept element to its node's position (an undo may have moved it) and selection. */
  place(node) {
    const el = this.elements.get(node.id);
    if (!el) return;
    placeAt(el, node);
    el.classList.toggle("selected", this.selection.has(node.id));
  }

  /** Redraw some nodes (after an edit that changed their sockets or widgets, or their errors). */
  renderNodes(ids) {
    const built = [];
    for (const id of ids.map(Number)) {
      const node = this.graph.nodes.get(id);
      if (node) { built.push(this.rebuild(node)); continue; }
      this.elements.get(id)?.remove();
      this.forget(id);
    }
    for (const node of built) this.measure(node);
    this.drawLinks(ids);
    this.scheduleCull();
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
    this.sizes.set(node.id, [box.width / this.scale, box.height / this.scale]);
    // What the overview draws of the node while the view moves: widget rows (boxes relative to the
    // node's top-left, world units; the value is read from the control when drawn) and socket labels.
    const local = (r) => [(r.left - box.left) / this.scale, (r.top - box.top) / this.scale, r.width / this.scale, r.height / this.scale];
    this.details.set(node.id, {
      rows: [...el.querySelectorAll(".node-widgets > .widget")].map((row) => ({
        box: local(row.getBoundingClientRect()), label: row.querySelector(".widget-label")?.textContent || "",
        control: row.querySelector("textarea, select, input:not([type=file])"), multiline: row.classList.contains("widget-multiline"),
      })).filter((row) => row.box[2] > 0),
      labels: { in: [...el.querySelectorAll(".socket.in .socket-label")].map((l) => l.textContent),
        out: [...el.querySelectorAll(".socket.out .socket-label")].map((l) => l.textContent) },
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

  /**
   * Draw the links: paths are kept per link and rewritten only when their curve changed; with
   * `nodeIds`, only links touching those nodes are looked at (a drag moves a few nodes).
   */
  drawLinks(nodeIds = null) {
    const touched = nodeIds ? new Set([...nodeIds].map(Number)) : null;
    for (const [id, path] of this.paths) {
      if (this.graph.links.has(id) && id !== this.hiddenLink) continue;
      path.remove();
      this.paths.delete(id);
      this.culled.delete(`link:${id}`);
    }
    for (const link of this.graph.links.values()) {
      if (link.id === this.hiddenLink) continue;
      if (touched && !touched.has(link.origin_id) && !touched.has(link.target_id)) continue;
      const from = this.socketPosition(link.origin_id, "out", link.origin_slot);
      const to = this.socketPosition(link.target_id, "in", link.target_slot);
      let path = this.paths.get(link.id);
      if (!from || !to) {
        if (path) { path.remove(); this.paths.delete(link.id); }
        continue;
      }
      if (!path) {
        path = document.createElementNS(SVG, "path");
        path.classList.add("link");
        path.dataset.linkId = String(link.id);
        this.svg.append(path);
        this.paths.set(link.id, path);
      }
      const colour = typeColour(link.type);
      if (path.linkColour !== colour) { path.style.stroke = colour; path.linkColour = colour; }
      const d = CanvasView.curve(from, to);
      if (path.curve !== d) {
        path.setAttribute("d", d);
        path.curve = d;
        path.bounds = CanvasView.curveBounds(from, to);
      }
    }
  }

  /** [x0, y0, x1, y1] holding a link's curve (its end and control points). */
  static curveBounds([x1, y1], [x2, y2]) {
    const d = Math.max(40, Math.abs(x2 - x1) * 0.5);
    return [Math.min(x1, x2 - d), Math.min(y1, y2), Math.max(x1 + d, x2), Math.max(y1, y2)];
  }

  /** Show the link being dragged between a socket and the pointer (null hides it). */
  showDragLink(from, to, type) {
    this.dragging = Boolean(from);
    if (!from) { this.dragPath.remove(); this.drawLinks(); this.cull(); return; }
    this.dragPath.setAttribute("d", CanvasView.curve(from, to));
    this.dragPath.style.stroke = typeColour(type);
    if (this.hiddenLink != null) this.overview.schedule();
    if (!this.dragPath.isConnected) this.dragLayer.append(this.dragPath);
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
      el.append(title, Object.assign(document.createElement("div"), { className: "group-resize", title: "Resize the group" }));
      return el;
    }));
  }

  /** Move node elements to their model positions (during drags) and redraw links. */
  updatePositions(ids) {
    for (const id of ids) {
      const node = this.graph.nodes.get(id);
      const el = this.elements.get(id);
      if (node && el) placeAt(el, node);
    }
    this.drawLinks(ids);
    this.scheduleCull();
  }

  // --- culling -----------------------------------------------------------------------------

  /** Cull once in the next frame, however often the viewport moved before it. */
  scheduleCull() {
    this.overview.schedule();
    if (this.cullFrame) return;
    this.cullFrame = requestAnimationFrame(() => { this.cullFrame = 0; this.cull(); });
  }

  /**
   * Hide nodes and links wholly outside the visible area (plus a margin): they keep their layout,
   * so measuring, fitting and selecting still see them, but they cost no painting.
   */
  cull() {
    this.overview.schedule();
    if (this.overview.active) return;      // the DOM is not rendered: culled when it comes back (setMoving)
    const [width, height] = this.size();
    if (!width) return;
    const margin = CULL_MARGIN / this.scale;
    const x0 = -this.offset[0] - margin;
    const y0 = -this.offset[1] - margin;
    const x1 = width / this.scale - this.offset[0] + margin;
    const y1 = height / this.scale - this.offset[1] + margin;
    const show = (key, el, inside) => {
      if (inside === !this.culled.has(key)) return;
      if (inside) this.culled.delete(key);
      else this.culled.add(key);
      el.classList.toggle("culled", !inside);
    };
    for (const [id, el] of this.elements) {
      const node = this.graph.nodes.get(id);
      if (!node) continue;
      const [w, h] = this.sizes.get(id) || [node.size[0], node.size[1] + TITLE_HEIGHT];
      const x = node.pos[0];
      const y = node.pos[1] - TITLE_HEIGHT;
      show(id, el, x < x1 && x + w > x0 && y < y1 && y + h > y0);
    }
    for (const [id, path] of this.paths) {
      const b = path.bounds;
      show(`link:${id}`, path, !b || (b[0] < x1 && b[2] > x0 && b[1] < y1 && b[3] > y0));
    }
  }

  // --- hit-testing -------------------------------------------------------------------------

  /**
   * The element under a client point, as `document.elementFromPoint` finds it; in the overview,
   * where nodes are drawn on the canvas and their DOM is not rendered, a node's socket row, body
   * or element is found from the nodes' measured geometry instead.
   */
  elementAt(clientX, clientY) {
    const hit = document.elementFromPoint(clientX, clientY);
    if (!this.overview.active || (hit && hit !== this.root && !this.world.contains(hit))) return hit;
    return this.nodePartAt(clientX, clientY) || hit;
  }

  /** What a pointer event is on: its target, or in the overview the node part under it. */
  targetOf(event) {
    return this.overview.active ? this.elementAt(event.clientX, event.clientY) || event.target : event.target;
  }

  nodePartAt(clientX, clientY) {
    const [wx, wy] = this.toWorld(clientX, clientY);
    const ids = [...this.elements.keys()];
    for (let i = ids.length - 1; i >= 0; i--) {     // the last drawn is on top
      const node = this.graph.nodes.get(ids[i]);
      if (!node) continue;
      const [x, y, w, h] = this.nodeBox(node);
      if (wx < x || wx > x + w || wy < y || wy > y + h) continue;
      const el = this.elements.get(node.id);
      // The title bar answers as the node: renaming there would put its editor in the unrendered DOM.
      if (wy < y + TITLE_HEIGHT) return el;
      for (const direction of ["in", "out"]) {
        const found = (this.sockets.get(node.id)?.[direction] || []).findIndex(([sx, sy]) =>
          Math.abs(node.pos[1] + sy - wy) <= SOCKET_ROW / 2 && (direction === "in" ? wx < x + w / 2 : wx >= x + w / 2));
        if (found >= 0) return el.querySelectorAll(`.socket.${direction}`)[found] || el;
      }
      return el.querySelector(".node-body") || el;
    }
    return null;
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
    this.overview.schedule();
    this.dispatchEvent(new CustomEvent("selection", { detail: { ids: [...this.selection] } }));
  }

  /** Merge `patch` into a node's run state and show it. */
  setStatus(id, patch) {
    const key = Number(id);
    const status = { ...(this.status.get(key) || {}), ...patch };
    this.status.set(key, status);
    const el = this.elements.get(key);
    if (!el) return;
    this.overview.schedule();
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
