/**
 * Keyboard access to the canvas, for people who cannot or do not use a pointer (issue 21).
 *
 * Nodes and sockets are in the Tab order (nodeview.js makes them focusable). On a socket, Enter or
 * Space picks it up and, on a second socket, connects the two (Escape drops it; Delete unlinks an
 * input). On a node, arrows move it (Shift: further), F2 renames it, the context-menu key or
 * Shift+F10 opens its menu. On the canvas, arrows pan, Enter opens the palette and "]" / "["
 * go to the next / previous node, bringing it into view (nodes off screen are not drawn, so Tab
 * alone would skip them). Nodes added from "+ Node" go to a free spot. What happens is said in a
 * polite live region for screen readers.
 */

const NODE_STEP = 10;
const PAN_STEP = 60;
/** Free spots for nodes added from the keyboard are searched on this grid, left to right. */
const SPOT_COLUMNS = 4;
const SPOT_SPACING = [340, 320];

function typing(target) {
  return Boolean(target.closest?.("input, textarea, select, [contenteditable]"));
}

function contextKey(e) {
  return e.key === "ContextMenu" || (e.shiftKey && e.key === "F10");
}

/** How to find a focused part of a node again in a redrawn element (null: the node itself). */
function focusSelector(target) {
  const socket = target.closest(".socket");
  if (socket) return `.socket.${socket.classList.contains("out") ? "out" : "in"}[data-slot="${socket.dataset.slot}"]`;
  const widget = target.closest(".widget");
  if (widget) return `.widget[data-widget="${CSS.escape(widget.dataset.widget)}"] ${target.classList.contains("seed-control") ? ".seed-control" : ".widget-input, .widget-toggle"}`;
  return null;
}

/** A visually hidden element whose text screen readers announce. */
function liveRegion() {
  const region = document.createElement("div");
  region.className = "visually-hidden keyboard-announcer";
  region.setAttribute("role", "status");
  region.setAttribute("aria-live", "polite");
  document.body.append(region);
  return region;
}

export class KeyboardAccess {
  constructor(editor) {
    this.editor = editor;
    this.pending = null;        // the socket picked up: {nodeId, slot, dir, type}
    this.usingKeyboard = false; // the last input was a key, not a pointer
    this.announcer = liveRegion();
    const root = editor.view.root;
    root.setAttribute("role", "application");
    root.setAttribute("aria-roledescription", "node graph");
    root.setAttribute("aria-label", "Node graph: Tab to nodes and sockets, Enter on the canvas adds a node");
    document.addEventListener("keydown", () => { this.usingKeyboard = true; }, true);
    document.addEventListener("pointerdown", () => { this.usingKeyboard = false; }, true);
    root.addEventListener("keydown", (e) => this.key(e));
    root.addEventListener("focusin", (e) => this.focused(e));
    // Listeners run in order: the view has redrawn by now, maybe replacing the focused node's element.
    editor.graph.addEventListener("change", () => this.keepFocus());
    // A palette opened by a double-click adds where it was clicked; opened otherwise ("+ Node", Enter on
    // the canvas), its node goes to a free spot, so nodes added one after another do not pile up.
    document.addEventListener("dblclick", () => { this.doubleClickAt = performance.now(); }, true);
    const { palette } = editor;
    const open = palette.open.bind(palette);
    palette.open = (...args) => {
      this.spotChosen = performance.now() - (this.doubleClickAt ?? -Infinity) < 100;
      return open(...args);
    };
    const choose = palette.onChoose;
    palette.onChoose = (type, world, link) => this.added(choose(type, this.placeFor(world, link), link));
  }

  say(text) {
    this.announcer.textContent = "";
    requestAnimationFrame(() => { this.announcer.textContent = text; });
  }

  // --- focus ----------------------------------------------------------------------------------

  /** A node (or one of its controls) taking the focus is selected, and brought into view from the keyboard. */
  focused(e) {
    const el = e.target.closest?.(".node");
    this.lastFocus = el ? { nodeId: Number(el.dataset.nodeId), selector: focusSelector(e.target) } : null;
    if (!el) return;
    const id = Number(el.dataset.nodeId);
    const { view } = this.editor;
    if (!this.usingKeyboard) return;   // a click selects by itself (Shift+click may have just unselected it)
    if (!view.selection.has(id)) view.select([id]);
    if (!view.isVisible(id)) view.reveal(id);
  }

  /** An edit redrew the node that had the focus: give it to the same part of the new element. */
  keepFocus() {
    const last = this.lastFocus;
    if (!last || (document.activeElement && document.activeElement !== document.body)) return;
    const el = this.editor.view.elements.get(last.nodeId);
    if (!el) { this.lastFocus = null; this.editor.view.root.focus({ preventScroll: true }); return; }   // it was deleted
    (last.selector ? el.querySelector(last.selector) : el)?.focus({ preventScroll: true });
  }

  focusNode(id) {
    const { view } = this.editor;
    if (!view.isVisible(id)) { view.reveal(id); view.cull(); }
    view.elements.get(id)?.focus({ preventScroll: true });
  }

  /** Go to the next (step 1) or previous (-1) node from the focused one, in id order. */
  cycleNodes(current, step) {
    const ids = [...this.editor.graph.nodes.keys()].sort((a, b) => a - b);
    if (!ids.length) return;
    const index = ids.indexOf(current);
    const next = index < 0 ? (step > 0 ? 0 : ids.length - 1) : (index + step + ids.length) % ids.length;
    this.focusNode(ids[next]);
  }

  // --- palette ----------------------------------------------------------------------------------

  /** Where a node chosen in the palette goes: where it was double-clicked, else the first free spot from `world`. */
  placeFor(world, link) {
    if (this.spotChosen || link) return world;
    const { graph, view } = this.editor;
    const boxes = [...graph.nodes.values()].map((node) => view.nodeBox(node));
    const [w, h] = SPOT_SPACING;
    for (let i = 0; i < 100; i += 1) {
      const x = world[0] + (i % SPOT_COLUMNS) * w;
      const y = world[1] + Math.floor(i / SPOT_COLUMNS) * h;
      if (!boxes.some(([bx, by, bw, bh]) => bx < x + w - 20 && bx + bw > x && by < y + h - 20 && by + bh > y)) return [x, y];
    }
    return world;
  }

  added(node) {
    if (node && this.usingKeyboard) {
      this.focusNode(node.id);
      this.say(`Added ${this.editor.graph.title(node)}`);
    }
    return node;
  }

  // --- keys -------------------------------------------------------------------------------------

  key(e) {
    if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
    const socketEl = e.target.closest(".socket");
    const nodeEl = e.target.closest(".node");
    if (e.key === "Escape" && this.pending) { this.drop(); this.say("Connection cancelled"); return; }
    if (socketEl && nodeEl) this.socketKey(e, Number(nodeEl.dataset.nodeId), socketEl);
    else if (nodeEl && e.target === nodeEl) this.nodeKey(e, Number(nodeEl.dataset.nodeId));
    else if (e.target === this.editor.view.root) this.canvasKey(e);
  }

  canvasKey(e) {
    const { view } = this.editor;
    const pans = { ArrowLeft: [PAN_STEP, 0], ArrowRight: [-PAN_STEP, 0], ArrowUp: [0, PAN_STEP], ArrowDown: [0, -PAN_STEP] };
    const rect = view.root.getBoundingClientRect();
    if (pans[e.key]) {
      e.preventDefault();
      view.panBy(...pans[e.key]);
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      const client = { x: rect.left + rect.width / 3, y: rect.top + rect.height / 4 };
      this.editor.palette.open(view.toWorld(client.x, client.y), client);
    } else if (e.key === "]" || e.key === "[") {
      e.preventDefault();
      this.cycleNodes(null, e.key === "]" ? 1 : -1);
    } else if (contextKey(e)) {
      e.preventDefault();
      this.editor.contextMenu({ clientX: rect.left + rect.width / 3, clientY: rect.top + rect.height / 4 }, null);
    }
  }

  nodeKey(e, id) {
    const { editor } = this;
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[e.key]) {
      e.preventDefault();
      const step = NODE_STEP * (e.shiftKey ? 5 : 1);
      const ids = editor.view.selection.has(id) ? [...editor.view.selection] : [id];
      editor.graph.moveNodes(ids, moves[e.key][0] * step, moves[e.key][1] * step);
      editor.view.updatePositions(ids);
      editor.graph.changed("move", { nodes: ids });
    } else if (e.key === "]" || e.key === "[") {
      e.preventDefault();
      this.cycleNodes(id, e.key === "]" ? 1 : -1);
    } else if (e.key === "F2") {
      e.preventDefault();
      editor.rename(id);
    } else if (contextKey(e)) {
      e.preventDefault();
      const box = editor.view.elements.get(id).getBoundingClientRect();
      editor.contextMenu({ clientX: box.left + 20, clientY: box.top + 20 }, id);
    }
  }

  socketKey(e, nodeId, socketEl) {
    const slot = Number(socketEl.dataset.slot);
    const dir = socketEl.classList.contains("out") ? "out" : "in";
    const { graph } = this.editor;
    const node = graph.nodes.get(nodeId);
    if ((e.key === "Delete" || e.key === "Backspace") && dir === "in") {
      e.preventDefault();
      e.stopPropagation();   // not the node's deletion (shortcuts.js)
      if (node.inputs[slot].link != null) {
        graph.disconnectInput(nodeId, slot);
        this.say(`Disconnected ${node.inputs[slot].name}`);
      }
      this.refocus(nodeId, dir, slot);
      return;
    }
    if (e.key !== "Enter" && e.key !== " ") return;
    e.preventDefault();
    const here = { nodeId, slot, dir, type: (dir === "out" ? node.outputs : node.inputs)[slot].type };
    const from = this.pending;
    if (!from) { this.pickUp(here, socketEl); return; }
    if (from.nodeId === nodeId && from.slot === slot && from.dir === dir) { this.drop(); this.say("Connection cancelled"); return; }
    if (from.dir === dir) { this.refuse(`Connect an output to an input, not two ${dir === "out" ? "outputs" : "inputs"}.`); return; }
    const [out, into] = dir === "in" ? [from, here] : [here, from];
    const reason = graph.refusal(out.nodeId, out.slot, into.nodeId, into.slot);
    if (reason) { this.refuse(reason); return; }
    this.drop();
    graph.connect(out.nodeId, out.slot, into.nodeId, into.slot);
    const name = (id, d, s) => `${graph.title(graph.nodes.get(id))} ${(d === "out" ? graph.nodes.get(id).outputs : graph.nodes.get(id).inputs)[s].name}`;
    this.say(`Connected ${name(out.nodeId, "out", out.slot)} to ${name(into.nodeId, "in", into.slot)}`);
    this.refocus(nodeId, dir, slot);
  }

  pickUp(socket, socketEl) {
    this.pending = socket;
    socketEl.classList.add("link-source");
    this.editor.view.root.classList.add("keyboard-linking");
    this.say(`Picked up ${socketEl.dataset.name || socket.type} (${socket.type}): go to ${socket.dir === "out" ? "an input" : "an output"} and press Enter; Escape cancels`);
  }

  drop() {
    this.pending = null;
    this.editor.view.root.querySelectorAll(".socket.link-source").forEach((el) => el.classList.remove("link-source"));
    this.editor.view.root.classList.remove("keyboard-linking");
  }

  refuse(reason) {
    this.say(reason);
    this.editor.toast(reason, "warn");
  }

  /** Keep the focus on a socket whose node was redrawn by the edit. */
  refocus(nodeId, dir, slot) {
    requestAnimationFrame(() => {
      if (document.activeElement && document.activeElement !== document.body) return;
      this.editor.view.elements.get(nodeId)?.querySelector(`.socket.${dir}[data-slot="${slot}"]`)?.focus({ preventScroll: true });
    });
  }
}

export function installKeyboardAccess(editor) {
  return new KeyboardAccess(editor);
}
