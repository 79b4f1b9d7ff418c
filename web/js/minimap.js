/**
 * The minimap: the whole graph drawn small in a corner of the canvas (nodes as boxes, groups as
 * outlines) with the visible area framed; clicking or dragging on it centres the view there.
 */

const WIDTH = 220;
const HEIGHT = 150;
const MARGIN = 8;

export class Minimap {
  constructor(view, graph) {
    this.view = view;
    this.graph = graph;
    this.canvas = Object.assign(document.createElement("canvas"), { className: "minimap", width: WIDTH, height: HEIGHT });
    this.canvas.setAttribute("aria-label", "Minimap: click to move the view");
    this.canvas.title = "Minimap: click or drag to move the view";
    view.root.append(this.canvas);
    this.frame = 0;
    view.addEventListener("viewport", () => this.schedule());
    graph.addEventListener("change", () => this.schedule());
    // Its own gestures: the canvas under it must not pan or select.
    this.canvas.addEventListener("pointerdown", (e) => {
      e.stopPropagation();
      e.preventDefault();
      this.canvas.setPointerCapture(e.pointerId);
      this.dragging = this.last || this.mapping();   // the map stays put while the view follows the pointer
      this.navigate(e);
    });
    this.canvas.addEventListener("pointermove", (e) => { if (this.dragging) this.navigate(e); });
    this.canvas.addEventListener("pointerup", (e) => { e.stopPropagation(); this.dragging = null; });
    this.canvas.addEventListener("dblclick", (e) => e.stopPropagation());
    this.canvas.addEventListener("contextmenu", (e) => { e.stopPropagation(); e.preventDefault(); });
    this.canvas.addEventListener("wheel", (e) => e.stopPropagation());
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  /** The visible area, in world units: [x, y, w, h]. */
  visible() {
    const [width, height] = this.view.size();    // as last observed: no forced layout in the frame after an edit
    const { scale, offset } = this.view;
    return [-offset[0], -offset[1], width / scale, height / scale];
  }

  /** World bounds shown (the graph and the visible area) and the map's scale and origin. */
  mapping() {
    const boxes = [...this.graph.nodes.values()].map((n) => this.view.nodeBox(n));
    for (const group of this.graph.groups) if (group.bounding) boxes.push(group.bounding);
    boxes.push(this.visible());
    const x0 = Math.min(...boxes.map((b) => b[0]));
    const y0 = Math.min(...boxes.map((b) => b[1]));
    const x1 = Math.max(...boxes.map((b) => b[0] + b[2]));
    const y1 = Math.max(...boxes.map((b) => b[1] + b[3]));
    const scale = Math.min((WIDTH - 2 * MARGIN) / Math.max(1, x1 - x0), (HEIGHT - 2 * MARGIN) / Math.max(1, y1 - y0));
    const ox = MARGIN + ((WIDTH - 2 * MARGIN) - (x1 - x0) * scale) / 2 - x0 * scale;
    const oy = MARGIN + ((HEIGHT - 2 * MARGIN) - (y1 - y0) * scale) / 2 - y0 * scale;
    return { scale, ox, oy };
  }

  draw() {
    const ctx = this.canvas.getContext("2d");
    const { scale, ox, oy } = this.mapping();
    this.last = { scale, ox, oy };
    const rect = ([x, y, w, h]) => [ox + x * scale, oy + y * scale, Math.max(1, w * scale), Math.max(1, h * scale)];
    ctx.clearRect(0, 0, WIDTH, HEIGHT);
    ctx.fillStyle = "rgb(20 20 20 / 85%)";
    ctx.fillRect(0, 0, WIDTH, HEIGHT);
    for (const group of this.graph.groups) {
      if (!group.bounding) continue;
      ctx.strokeStyle = group.color || "#3f789e";
      ctx.strokeRect(...rect(group.bounding));
    }
    for (const node of this.graph.nodes.values()) {
      ctx.fillStyle = this.view.selection.has(node.id) ? "#ddd" : (node.color || "#777");
      ctx.fillRect(...rect(this.view.nodeBox(node)));
    }
    ctx.strokeStyle = "#4f8ff7";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(...rect(this.visible()));
  }

  /** Centre the view on the world point under the pointer. */
  navigate(e) {
    const { scale, ox, oy } = this.dragging || this.last || this.mapping();
    const box = this.canvas.getBoundingClientRect();
    const wx = (e.clientX - box.left - ox) / scale;
    const wy = (e.clientY - box.top - oy) / scale;
    const root = this.view.root.getBoundingClientRect();
    this.view.setViewport({ scale: this.view.scale,
      offset: [root.width / this.view.scale / 2 - wx, root.height / this.view.scale / 2 - wy] });
  }
}
