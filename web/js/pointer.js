/**
 * Pointer gestures on the canvas: pan (drag the background, or the middle button), box select
 * (Ctrl + drag; Shift + drag adds to the selection), select and move nodes, resize them, move groups, connect by dragging
 * from socket to socket (refused, with a reason, when the types do not match), disconnect by
 * dragging a link off its input, zoom with the wheel around the pointer, double-click for the
 * palette and right-click for the context menu.
 */

import { typesCompatible } from "./nodedefs.js";

const CLICK_SLOP = 4;

export class PointerController {
  constructor(view, graph, callbacks) {
    this.view = view;
    this.graph = graph;
    this.callbacks = callbacks;   // refused(reason), palette(world, client), menu(event, nodeId), connected()
    this.drag = null;
    const root = view.root;
    root.addEventListener("pointerdown", (e) => this.down(e));
    root.addEventListener("pointermove", (e) => this.move(e));
    root.addEventListener("pointerup", (e) => this.up(e));
    root.addEventListener("pointercancel", () => this.cancel());
    root.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    root.addEventListener("dblclick", (e) => this.doubleClick(e));
    root.addEventListener("contextmenu", (e) => this.contextMenu(e));
  }

  nodeIdOf(target) {
    const el = target.closest?.(".node");
    return el ? Number(el.dataset.nodeId) : null;
  }

  isControl(target) {
    return Boolean(target.closest?.("input, textarea, select, button, .node-images img"));
  }

  down(e) {
    const target = this.view.targetOf(e);   // zoomed out, nodes are drawn on a canvas: hit-tested by geometry
    if (e.button === 2 || this.isControl(target)) return;
    this.view.root.focus({ preventScroll: true });
    const start = { x: e.clientX, y: e.clientY };
    if (e.button === 1) {
      this.begin(e, { kind: "pan", last: start });
      return;
    }
    const socketEl = target.closest(".socket");
    const nodeId = this.nodeIdOf(target);
    if (socketEl && nodeId != null) {
      this.beginLink(e, nodeId, socketEl);
      return;
    }
    if (target.closest(".node-resize") && nodeId != null) {
      const node = this.graph.nodes.get(nodeId);
      this.begin(e, { kind: "resize", nodeId, start, width: this.view.nodeBox(node)[2] });
      return;
    }
    if (nodeId != null) {
      if (e.shiftKey || e.ctrlKey || e.metaKey) this.view.toggle(nodeId);
      else if (!this.view.selection.has(nodeId)) this.view.select([nodeId]);
      this.begin(e, { kind: "move", last: start, start, moved: false, ids: [...this.view.selection] });
      return;
    }
    const groupTitle = target.closest(".group-title");
    if (groupTitle) {
      const index = Number(groupTitle.parentElement.dataset.group);
      this.begin(e, { kind: "group", index, last: start, start, moved: false, ids: this.nodesInGroup(index) });
      return;
    }
    if (e.ctrlKey || e.shiftKey || e.metaKey) {
      this.begin(e, { kind: "box", start, additive: e.shiftKey });
      return;
    }
    this.begin(e, { kind: "pan", last: start, start, moved: false });
  }

  begin(e, drag) {
    this.drag = drag;
    this.view.root.setPointerCapture(e.pointerId);
    e.preventDefault();
  }

  beginLink(e, nodeId, socketEl) {
    const slot = Number(socketEl.dataset.slot);
    const node = this.graph.nodes.get(nodeId);
    if (socketEl.classList.contains("out")) {
      this.begin(e, { kind: "link", from: { nodeId, slot, dir: "out" }, type: node.outputs[slot].type });
    } else {
      const link = this.graph.links.get(node.inputs[slot].link);
      if (link) {   // pick the link up by its end: drop it elsewhere to move it, on the canvas to remove it
        this.view.hiddenLink = link.id;
        this.begin(e, { kind: "link", from: { nodeId: link.origin_id, slot: link.origin_slot, dir: "out" },
          type: link.type, detached: { nodeId, slot, linkId: link.id } });
      } else {
        this.begin(e, { kind: "link", from: { nodeId, slot, dir: "in" }, type: node.inputs[slot].type });
      }
    }
    this.moveLink(e);
  }

  move(e) {
    const drag = this.drag;
    if (!drag) return;
    if (drag.kind === "pan") {
      this.view.panBy(e.clientX - drag.last.x, e.clientY - drag.last.y);
      drag.last = { x: e.clientX, y: e.clientY };
      drag.moved ||= Math.hypot(e.clientX - drag.start?.x, e.clientY - drag.start?.y) > CLICK_SLOP;
    } else if (drag.kind === "move" || drag.kind === "group") {
      const dx = (e.clientX - drag.last.x) / this.view.scale;
      const dy = (e.clientY - drag.last.y) / this.view.scale;
      drag.last = { x: e.clientX, y: e.clientY };
      drag.moved ||= Math.hypot(e.clientX - drag.start.x, e.clientY - drag.start.y) > CLICK_SLOP;
      this.graph.moveNodes(drag.ids, dx, dy);
      if (drag.kind === "group") {
        const group = this.graph.groups[drag.index];
        group.bounding = [group.bounding[0] + dx, group.bounding[1] + dy, group.bounding[2], group.bounding[3]];
        this.view.renderGroups();
      }
      this.view.updatePositions(drag.ids);
    } else if (drag.kind === "resize") {
      const node = this.graph.nodes.get(drag.nodeId);
      node.size[0] = Math.max(180, Math.round(drag.width + (e.clientX - drag.start.x) / this.view.scale));
      this.view.elements.get(drag.nodeId).style.width = `${node.size[0]}px`;
      this.view.measure(node);
      this.view.drawLinks();
    } else if (drag.kind === "box") {
      const x = Math.min(e.clientX, drag.start.x);
      const y = Math.min(e.clientY, drag.start.y);
      const rect = this.view.root.getBoundingClientRect();
      Object.assign(this.view.selectBox.style, { display: "block", left: `${x - rect.left}px`, top: `${y - rect.top}px`,
        width: `${Math.abs(e.clientX - drag.start.x)}px`, height: `${Math.abs(e.clientY - drag.start.y)}px` });
    } else if (drag.kind === "link") {
      this.moveLink(e);
    }
  }

  moveLink(e) {
    const drag = this.drag;
    const anchor = this.view.socketPosition(drag.from.nodeId, drag.from.dir, drag.from.slot);
    const pointer = this.view.toWorld(e.clientX, e.clientY);
    if (drag.from.dir === "out") this.view.showDragLink(anchor, pointer, drag.type);
    else this.view.showDragLink(pointer, anchor, drag.type);
    const hovered = this.socketAt(e.clientX, e.clientY);
    if (hovered !== drag.hovered) {
      drag.hovered?.classList.remove("drop-ok", "drop-refused");
      drag.hovered = hovered;
      if (hovered) hovered.classList.add(this.dropReason(hovered) ? "drop-refused" : "drop-ok");
    }
  }

  socketAt(x, y) {
    const hit = this.view.elementAt(x, y);
    return hit?.closest?.(".canvas .socket") || null;
  }

  /** Why dropping the dragged link on `socketEl` is refused (null: accepted). */
  dropReason(socketEl, drag = this.drag) {
    const { from } = drag;
    const nodeId = this.nodeIdOf(socketEl);
    const slot = Number(socketEl.dataset.slot);
    const isOut = socketEl.classList.contains("out");
    if (isOut === (from.dir === "out")) return `Connect an output to an input, not two ${isOut ? "outputs" : "inputs"}.`;
    return from.dir === "out" ? this.graph.refusal(from.nodeId, from.slot, nodeId, slot)
      : this.graph.refusal(nodeId, slot, from.nodeId, from.slot);
  }

  up(e) {
    const drag = this.drag;
    if (!drag) return;
    this.drag = null;
    this.view.root.releasePointerCapture?.(e.pointerId);
    if (drag.kind === "pan") {
      if (!drag.moved && e.button === 0) this.view.select([]);
    } else if (drag.kind === "move" || drag.kind === "group") {
      if (drag.moved) this.graph.changed("move", { nodes: drag.ids });
      else if (drag.kind === "move" && !(e.shiftKey || e.ctrlKey || e.metaKey)) {
        this.view.select([this.nodeIdOf(e.target) ?? drag.ids[0]].filter((id) => id != null));
      }
    } else if (drag.kind === "resize") {
      this.graph.changed("move", { nodes: [drag.nodeId] });
    } else if (drag.kind === "box") {
      this.finishBox(drag, e);
    } else if (drag.kind === "link") {
      this.finishLink(drag, e);
    }
  }

  cancel() {
    if (this.drag?.kind === "link") this.view.hiddenLink = null;
    this.view.showDragLink(null);
    this.view.selectBox.style.display = "none";
    this.drag = null;
  }

  finishBox(drag, e) {
    this.view.selectBox.style.display = "none";
    const [x0, y0] = this.view.toWorld(Math.min(e.clientX, drag.start.x), Math.min(e.clientY, drag.start.y));
    const [x1, y1] = this.view.toWorld(Math.max(e.clientX, drag.start.x), Math.max(e.clientY, drag.start.y));
    const hits = [...this.graph.nodes.values()].filter((node) => {
      const [x, y, w, h] = this.view.nodeBox(node);
      return x < x1 && x + w > x0 && y < y1 && y + h > y0;
    }).map((n) => n.id);
    this.view.select(hits, { additive: drag.additive });
  }

  finishLink(drag, e) {
    drag.hovered?.classList.remove("drop-ok", "drop-refused");
    this.view.showDragLink(null);
    this.view.hiddenLink = null;
    const hit = this.view.elementAt(e.clientX, e.clientY);
    const socketEl = hit?.closest?.(".canvas .socket");
    const nodeId = hit ? this.nodeIdOf(hit) : null;
    const { from, detached } = drag;
    if (socketEl && nodeId != null) {
      const slot = Number(socketEl.dataset.slot);
      if (detached && nodeId === detached.nodeId && slot === detached.slot) { this.view.drawLinks(); return; }
      const reason = this.dropReason(socketEl, drag);
      if (reason) { this.refuse(reason); return; }
      this.graph.batch(() => {
        if (detached) this.graph.disconnectInput(detached.nodeId, detached.slot);
        if (from.dir === "out") this.graph.connect(from.nodeId, from.slot, nodeId, slot);
        else this.graph.connect(nodeId, slot, from.nodeId, from.slot);
      });
      return;
    }
    if (nodeId != null && nodeId !== from.nodeId && from.dir === "out") {
      this.dropOnNode(drag, nodeId, hit);
      return;
    }
    if (detached) {
      this.graph.disconnectInput(detached.nodeId, detached.slot);
      return;
    }
    this.view.drawLinks();
    if (!hit?.closest?.(".node")) {
      this.callbacks.palette(this.view.toWorld(e.clientX, e.clientY), { x: e.clientX, y: e.clientY },
        { from, type: drag.type });
    }
  }

  /** A link dropped on a node's body: the widget under the pointer, else its first free matching input. */
  dropOnNode(drag, nodeId, hit) {
    const node = this.graph.nodes.get(nodeId);
    const { from, detached } = drag;
    const widgetName = hit.closest?.(".widget")?.dataset.widget;
    const widget = widgetName ? this.graph.widget(node, widgetName) : null;
    let slot = -1;
    if (widget && typesCompatible(drag.type, widget.type)) {
      slot = -2;
    } else {
      const candidates = node.inputs.map((input, i) => [input, i]).filter(([input]) => typesCompatible(drag.type, input.type));
      const free = candidates.find(([input]) => input.link == null) || candidates[0];
      slot = free ? free[1] : -1;
    }
    if (slot === -1) {
      this.refuse(`${this.graph.title(node)} has no input that takes ${drag.type}.`);
      return;
    }
    this.graph.batch(() => {
      if (detached) this.graph.disconnectInput(detached.nodeId, detached.slot);
      const target = slot === -2 ? this.graph.convertWidgetToInput(node, widget.name) : slot;
      const result = this.graph.connect(from.nodeId, from.slot, nodeId, target);
      if (result.refused) this.refuse(result.refused);
    });
  }

  refuse(reason) {
    this.view.drawLinks();
    this.callbacks.refused(reason);
  }

  wheel(e) {
    const scrollable = e.target.closest?.("textarea, select, .node-images");
    if (scrollable && scrollable.scrollHeight > scrollable.clientHeight && !e.ctrlKey) return;
    e.preventDefault();
    const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
    this.view.zoomAt(e.clientX, e.clientY, Math.exp(-delta * 0.0015));
  }

  doubleClick(e) {
    // The clicks' pointer capture (for dragging) retargets the dblclick to the canvas: find what is under the pointer.
    const target = this.view.elementAt(e.clientX, e.clientY) || e.target;
    if (target.closest?.(".node, .group-title, .palette, .menu")) {
      const nodeId = this.nodeIdOf(target);
      if (nodeId != null && target.closest(".node-title")) this.callbacks.rename(nodeId);
      return;
    }
    this.callbacks.palette(this.view.toWorld(e.clientX, e.clientY), { x: e.clientX, y: e.clientY }, null);
  }

  contextMenu(e) {
    const target = this.view.targetOf(e);
    if (this.isControl(target) && !target.closest(".node-images img")) return;
    e.preventDefault();
    const nodeId = this.nodeIdOf(target);
    if (nodeId != null && !this.view.selection.has(nodeId)) this.view.select([nodeId]);
    this.callbacks.menu(e, nodeId);
  }

  nodesInGroup(index) {
    const [gx, gy, gw, gh] = this.graph.groups[index].bounding || [0, 0, 0, 0];
    return [...this.graph.nodes.values()].filter((node) => {
      const [x, y, w, h] = this.view.nodeBox(node);
      return x >= gx && y >= gy && x + w <= gx + gw && y + h <= gy + gh;
    }).map((n) => n.id);
  }
}
