/**
 * The overview: zoomed out, and at any zoom while the view is panned or zoomed, nodes and links are
 * drawn on one <canvas> instead of by the DOM, so a frame paints one bitmap rather than every node's
 * boxes, controls and text. Zoomed out it draws boxes, titles and sockets; at legible zooms
 * (`detailed`) also socket labels and widget rows, close to what the DOM shows. The DOM nodes stay
 * laid out but are not rendered (style.css: `.canvas.overview`); CanvasView.elementAt hit-tests them.
 */

import { MODE_BYPASSED, MODE_MUTED } from "./graph.js";
import { typeColour } from "./nodedefs.js";

/** Below this on-screen font size (pixels) a title is not drawn: it would be an unreadable smudge. */
const MIN_TITLE_PX = 4;
/** Below this zoom sockets are not drawn (under 3 pixels across). */
const MIN_SOCKET_SCALE = 0.25;
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const TITLE_FONT = `600 13px ${FONT}`;
const LABEL_FONT = `12px ${FONT}`;
const VALUE_FONT = `13px ${FONT}`;
const RADIUS = 8;

export class OverviewLayer {
  /**
   * `view`: the CanvasView; its `nodeBox`, `socketPosition`, `selection` and `status` are what is drawn.
   * `gridSize`: the grid's cell in world units, drawn here while the view moves.
   */
  constructor(view, { gridSize }) {
    this.view = view;
    this.gridSize = gridSize;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "overview-layer";
    this.canvas.hidden = true;
    this.canvas.setAttribute("aria-hidden", "true");   // the transparent DOM nodes carry the accessible tree
    view.root.insertBefore(this.canvas, view.selectBox);
    this.active = false;
    this.detailed = false;     // draw socket labels and widgets too (set by the view from the zoom)
    this.frame = 0;
    this.colours = null;
  }

  /** Show or hide the overview; the view calls this as the zoom crosses its threshold. */
  setActive(active) {
    if (active === this.active) return;
    this.active = active;
    this.canvas.hidden = !active;
    if (active) this.schedule();
  }

  /** Redraw once in the next frame, however many changes come before it. */
  schedule() {
    if (!this.active || this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  /** The theme's colours, read once from the stylesheet. */
  theme() {
    if (!this.colours) {
      const style = getComputedStyle(this.view.root);
      const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
      this.colours = { body: read("--node-bg", "#353535"), title: read("--node-title-bg", "#2b2b2b"),
        border: read("--node-border", "#4a4a4a"), text: read("--text", "#e6e6e6"), ok: read("--ok", "#46a758"),
        danger: read("--danger", "#e5484d"), dim: read("--text-dim", "#9a9a9a"), widget: read("--widget-bg", "#222"),
        grid: read("--grid", "#262626") };
    }
    return this.colours;
  }

  draw() {
    if (!this.active) return;
    const { view } = this;
    const [width, height] = view.size();
    const ratio = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(width * ratio) || this.canvas.height !== Math.round(height * ratio)) {
      this.canvas.width = Math.round(width * ratio);
      this.canvas.height = Math.round(height * ratio);
    }
    const ctx = this.canvas.getContext("2d", { desynchronized: true });
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const { scale, offset } = view;
    if (view.moving) this.drawGrid(ctx, ratio);
    ctx.setTransform(ratio * scale, 0, 0, ratio * scale, ratio * scale * offset[0], ratio * scale * offset[1]);
    const view0 = [-offset[0], -offset[1], width / scale - offset[0], height / scale - offset[1]];
    this.drawLinks(ctx, view0);
    this.drawNodes(ctx, view0);
  }

  /** The grid as style.css draws it (a 1 px line at the start of every cell), while the DOM grid is hidden. */
  drawGrid(ctx, ratio) {
    const { scale, offset } = this.view;
    const cell = this.gridSize * scale * ratio;
    if (cell < 2) return;
    ctx.fillStyle = this.theme().grid;
    const start = (shift) => ((((shift * scale * ratio) % cell) + cell) % cell);
    for (let x = start(offset[0]); x < this.canvas.width; x += cell) ctx.fillRect(Math.floor(x), 0, ratio, this.canvas.height);
    for (let y = start(offset[1]); y < this.canvas.height; y += cell) ctx.fillRect(0, Math.floor(y), this.canvas.width, ratio);
  }

  /** Links as curves, one path per colour (a stroke per link would cost a draw call each). */
  drawLinks(ctx, [x0, y0, x1, y1]) {
    const { view } = this;
    const byColour = new Map();
    for (const link of view.graph.links.values()) {
      if (link.id === view.hiddenLink) continue;
      const from = view.socketPosition(link.origin_id, "out", link.origin_slot);
      const to = view.socketPosition(link.target_id, "in", link.target_slot);
      if (!from || !to) continue;
      const d = Math.max(40, Math.abs(to[0] - from[0]) * 0.5);
      if (Math.max(from[0] + d, to[0]) < x0 || Math.min(from[0], to[0] - d) > x1
        || Math.max(from[1], to[1]) < y0 || Math.min(from[1], to[1]) > y1) continue;
      const colour = typeColour(link.type);
      let path = byColour.get(colour);
      if (!path) byColour.set(colour, (path = new Path2D()));
      path.moveTo(from[0], from[1]);
      path.bezierCurveTo(from[0] + d, from[1], to[0] - d, to[1], to[0], to[1]);
    }
    ctx.lineWidth = 3;
    ctx.globalAlpha = 0.9;
    for (const [colour, path] of byColour) {
      ctx.strokeStyle = colour;
      ctx.stroke(path);
    }
    ctx.globalAlpha = 1;
  }

  /** Nodes as their title bar and body, outlined by state, with their title and sockets when legible. */
  drawNodes(ctx, [x0, y0, x1, y1]) {
    const { view } = this;
    const colours = this.theme();
    const titles = view.scale * 13 >= MIN_TITLE_PX;
    const sockets = view.scale >= MIN_SOCKET_SCALE ? new Map() : null;
    const titleHeight = 30;
    ctx.font = TITLE_FONT;
    ctx.textBaseline = "middle";
    for (const node of view.graph.nodes.values()) {
      const [x, y, w, h] = view.nodeBox(node);
      if (x > x1 || y > y1 || x + w < x0 || y + h < y0) continue;
      const status = view.status.get(node.id) || {};
      ctx.globalAlpha = node.mode === MODE_MUTED ? 0.45 : node.mode === MODE_BYPASSED ? 0.75 : 1;
      const body = node.mode === MODE_BYPASSED ? "#4a2f5c" : (node.bgcolor || colours.body);
      if (this.detailed) {
        this.roundRect(ctx, x, y, w, h, RADIUS, body);
        this.roundRect(ctx, x, y, w, Math.min(titleHeight, h), [RADIUS, RADIUS, 0, 0], node.color || colours.title);
      } else {
        ctx.fillStyle = body;
        ctx.fillRect(x, y, w, h);
        ctx.fillStyle = node.color || colours.title;
        ctx.fillRect(x, y, w, Math.min(titleHeight, h));
      }
      const selected = view.selection.has(node.id);
      ctx.lineWidth = selected || status.executing || status.errors?.length ? 2 / Math.max(view.scale, 0.2) : 1;
      ctx.strokeStyle = status.errors?.length ? colours.danger : status.executing ? colours.ok
        : selected ? "#fff" : colours.border;
      if (this.detailed) {
        ctx.beginPath();
        ctx.roundRect(x, y, w, h, RADIUS);
        ctx.stroke();
        this.drawDetails(ctx, node, x, y, w, colours);
      } else {
        ctx.strokeRect(x, y, w, h);
        if (titles) {
          ctx.fillStyle = colours.text;
          ctx.fillText(view.graph.title(node), x + 12, y + titleHeight / 2, Math.max(1, w - 24));
        }
      }
      if (sockets) this.collectSockets(node, sockets);
    }
    ctx.globalAlpha = 1;
    if (sockets) {
      for (const [colour, path] of sockets) {
        ctx.fillStyle = colour;
        ctx.fill(path);
      }
    }
  }

  roundRect(ctx, x, y, w, h, radii, fill) {
    ctx.fillStyle = fill;
    ctx.beginPath();
    ctx.roundRect(x, y, w, h, radii);
    ctx.fill();
  }

  /** Title, id, socket labels and widget rows, where the DOM draws them (CanvasView.measure). */
  drawDetails(ctx, node, x, y, w, colours) {
    const { view } = this;
    const details = view.details.get(node.id);
    ctx.fillStyle = "#777";
    ctx.beginPath();
    ctx.arc(x + 14, y + 15, 4, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillStyle = colours.text;
    ctx.font = TITLE_FONT;
    ctx.textAlign = "left";
    ctx.fillText(view.graph.title(node), x + 26, y + 15, Math.max(1, w - 80));
    ctx.fillStyle = colours.dim;
    ctx.font = `11px ${FONT}`;
    ctx.textAlign = "right";
    ctx.fillText(`#${node.id}`, x + w - 10, y + 15);
    if (!details) { ctx.textAlign = "left"; return; }
    ctx.font = LABEL_FONT;
    ctx.fillStyle = "#cfcfcf";
    details.labels.in.forEach((label, slot) => {
      const at = view.socketPosition(node.id, "in", slot);
      if (at) { ctx.textAlign = "left"; ctx.fillText(label, at[0] + 12, at[1]); }
    });
    details.labels.out.forEach((label, slot) => {
      const at = view.socketPosition(node.id, "out", slot);
      if (at) { ctx.textAlign = "right"; ctx.fillText(label, at[0] - 12, at[1]); }
    });
    for (const row of details.rows) {
      const [rx, ry, rw, rh] = row.box;
      this.roundRect(ctx, x + rx, y + ry, rw, rh, row.multiline ? 6 : Math.min(12, rh / 2), colours.widget);
      const value = row.control?.type === "checkbox" ? (row.control.checked ? "✓" : "") : (row.control?.value ?? "");
      if (row.multiline) {
        ctx.font = VALUE_FONT;
        ctx.fillStyle = colours.text;
        ctx.textAlign = "left";
        String(value).split("\n").slice(0, Math.floor((rh - 8) / 18)).forEach((line, i) =>
          ctx.fillText(line, x + rx + 8, y + ry + 15 + i * 18, rw - 16));
        continue;
      }
      ctx.font = LABEL_FONT;
      ctx.fillStyle = colours.dim;
      ctx.textAlign = "left";
      ctx.fillText(row.label, x + rx + 10, y + ry + rh / 2, rw * 0.45);
      ctx.font = VALUE_FONT;
      ctx.fillStyle = colours.text;
      ctx.textAlign = "right";
      ctx.fillText(String(value), x + rx + rw - 10, y + ry + rh / 2, rw * 0.5);
    }
    ctx.textAlign = "left";
  }

  collectSockets(node, byColour) {
    const add = (entry, direction, slot) => {
      const at = this.view.socketPosition(node.id, direction, slot);
      if (!at) return;
      const colour = typeColour(entry.type);
      let path = byColour.get(colour);
      if (!path) byColour.set(colour, (path = new Path2D()));
      path.moveTo(at[0] + 6, at[1]);
      path.arc(at[0], at[1], 6, 0, 2 * Math.PI);
    };
    node.inputs.forEach((input, slot) => add(input, "in", slot));
    node.outputs.forEach((output, slot) => add(output, "out", slot));
  }
}
