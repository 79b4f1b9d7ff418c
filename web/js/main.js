/**
 * The editor, wired together: the API client, node definitions from `/object_info`, the graph,
 * the canvas, the runner, files, undo and browser storage. `window.sdgraph` exposes these for
 * scripting and tests. Start-up opens the work saved in this browser, else workflows/txt2img.json.
 */

import { ApiClient } from "./api.js";
import { CanvasView } from "./canvas.js";
import { copyNodes, hasClipboard, pasteNodes } from "./clipboard.js";
import { Files } from "./files.js";
import { Graph, MODE_BYPASSED, MODE_MUTED } from "./graph.js";
import { closeMenu, showMenu } from "./menu.js";
import { NodeDefs } from "./nodedefs.js";
import { Palette } from "./palette.js";
import { Panels } from "./panels.js";
import { PointerController } from "./pointer.js";
import { Runner } from "./run.js";
import { installShortcuts } from "./shortcuts.js";
import { AutoSave, loadSaved } from "./storage.js";
import { UndoStack, snapshotOf } from "./undo.js";

const DEFAULT_WORKFLOW = "txt2img.json";
const $ = (selector) => document.querySelector(selector);

function clientId() {
  let id = sessionStorage.getItem("sdgraph.clientId");
  if (!id) {
    id = crypto.randomUUID ? crypto.randomUUID().replaceAll("-", "") : String(Math.random()).slice(2);
    sessionStorage.setItem("sdgraph.clientId", id);
  }
  return id;
}

class Editor {
  constructor(api, defs) {
    this.api = api;
    this.defs = defs;
    this.workflowName = "Untitled";
    this.graph = new Graph(defs);
    this.undo = new UndoStack();
    this.restoring = false;
    this.panels = new Panels(api, { openImageWorkflow: (image) => this.files.openImage(image) });
    this.view = new CanvasView($("#canvas"), this.graph, {
      onWidget: (node, name, value, opts) => this.widgetChanged(node, name, value, opts),
      onControl: (node, name, mode) => this.graph.setSeedControl(node, name, mode),
      onUpload: (node, name, file) => this.files.upload(node, name, file),
      imageUrl: (image) => api.viewUrl(image),
    });
    this.files = new Files(this);
    this.runner = new Runner({ api, graph: this.graph, view: this.view, ui: this.panels });
    this.palette = new Palette(defs, (type, world, link) => this.addNode(type, world, link));
    this.pointer = new PointerController(this.view, this.graph, {
      refused: (reason) => this.toast(reason, "warn"),
      palette: (world, client, link) => this.palette.open(world, client, link),
      menu: (event, nodeId) => this.contextMenu(event, nodeId),
      rename: (nodeId) => this.rename(nodeId),
    });
    this.autosave = new AutoSave(() => ({ name: this.workflowName, workflow: this.graph.toJSON() }));
    this.graph.addEventListener("change", (e) => this.changed(e.detail));
    this.view.root.addEventListener("pointerup", () => this.autosave.schedule());
    this.view.root.addEventListener("wheel", () => this.autosave.schedule(), { passive: true });
  }

  toast(text, kind) { return this.panels.toast(text, kind); }
  name() { return this.workflowName; }

  changed({ kind }) {
    if (kind === "structure" || kind === "mode" || kind === "load") this.view.render();
    this.autosave.schedule();
    if (this.restoring || kind === "load") return;
    clearTimeout(this.undoTimer);
    if (kind === "widget") this.undoTimer = setTimeout(() => this.recordUndo(), 400);
    else this.recordUndo();
  }

  recordUndo() {
    clearTimeout(this.undoTimer);
    this.undo.record(snapshotOf(this.graph.toJSON()));
  }

  widgetChanged(node, name, value) {
    this.graph.setWidgetValue(node, name, value);
    const widget = this.graph.widget(node, name);
    if (widget?.options.image_upload && value) {
      const [subfolder, filename] = value.includes("/") ? [value.slice(0, value.lastIndexOf("/")), value.slice(value.lastIndexOf("/") + 1)] : ["", value];
      this.view.setStatus(node.id, { images: [{ filename, subfolder, type: "input" }] });
    }
  }

  /** Open a UI-format workflow as the current one (a new undo history). */
  load(ui, name, { fit = false } = {}) {
    this.view.status.clear();
    this.view.selection.clear();
    this.graph.load(ui);
    this.workflowName = name || "Untitled";
    $("#workflow-name").textContent = this.workflowName;
    document.title = `${this.workflowName} · sdgraph`;
    if (fit || !ui.extra?.ds) this.view.fit();
    else this.view.setViewport(ui.extra.ds);
    this.undo.reset(snapshotOf(this.graph.toJSON()));
    this.autosave.flush();
  }

  restore(snapshot) {
    if (!snapshot) return;
    const ds = { scale: this.view.scale, offset: [...this.view.offset] };
    this.restoring = true;
    try {
      this.graph.load(JSON.parse(snapshot));
    } finally {
      this.restoring = false;
    }
    this.view.setViewport(ds);
    this.autosave.schedule();
  }

  undoStep() { clearTimeout(this.undoTimer); this.recordUndo(); this.restore(this.undo.undo()); }
  redoStep() { this.restore(this.undo.redo()); }

  addNode(type, world, link = null) {
    const node = this.graph.batch(() => {
      const added = this.graph.addNode(type, world);
      if (link) this.connectNew(added, link);
      return added;
    });
    this.view.select([node.id]);
    return node;
  }

  /** A node added from a dragged link: connect its first matching socket. */
  connectNew(node, { from, type }) {
    if (from.dir === "out") {
      const slot = node.inputs.findIndex((input) => this.graph.refusal(from.nodeId, from.slot, node.id, node.inputs.indexOf(input)) === null);
      if (slot >= 0) this.graph.connect(from.nodeId, from.slot, node.id, slot);
    } else {
      const slot = node.outputs.findIndex((o, i) => this.graph.refusal(node.id, i, from.nodeId, from.slot) === null);
      if (slot >= 0) this.graph.connect(node.id, slot, from.nodeId, from.slot);
    }
    return type;
  }

  selected() { return [...this.view.selection]; }

  deleteSelected() {
    const ids = this.selected();
    if (ids.length) this.graph.removeNodes(ids);
  }

  copy() {
    if (copyNodes(this.graph, this.selected())) this.toast(`Copied ${this.selected().length} node(s)`, "info");
  }

  paste(world = null) {
    const rect = this.view.root.getBoundingClientRect();
    const at = world || (this.lastPointer ? this.view.toWorld(this.lastPointer.x, this.lastPointer.y)
      : this.view.toWorld(rect.left + rect.width / 2, rect.top + rect.height / 2));
    const ids = pasteNodes(this.graph, at);
    if (ids.length) this.view.select(ids);
  }

  duplicate() {
    const ids = this.selected();
    if (!copyNodes(this.graph, ids)) return;
    const nodes = ids.map((id) => this.graph.nodes.get(id));
    this.paste([Math.min(...nodes.map((n) => n.pos[0])) + 30, Math.min(...nodes.map((n) => n.pos[1])) + 30]);
  }

  setMode(mode) {
    const ids = this.selected();
    if (ids.length) this.graph.setMode(ids, mode);
  }

  toggleCollapse(ids) {
    for (const id of ids) {
      const node = this.graph.nodes.get(id);
      if (node) node.flags = { ...node.flags, collapsed: !node.flags?.collapsed || undefined };
    }
    this.graph.changed("mode", { nodes: ids });
  }

  rename(nodeId) {
    const node = this.graph.nodes.get(nodeId);
    const titleEl = this.view.elements.get(nodeId)?.querySelector(".node-title-text");
    if (!node || !titleEl) return;
    const input = Object.assign(document.createElement("input"), { className: "title-editor", value: this.graph.title(node) });
    input.setAttribute("aria-label", "Node title");
    titleEl.replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = (commit) => {
      if (done) return;
      done = true;
      if (commit) this.graph.setTitle(node, input.value.trim());
      else this.view.renderNodes([nodeId]);
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") finish(true);
      if (e.key === "Escape") finish(false);
      e.stopPropagation();
    });
    input.addEventListener("blur", () => finish(true));
  }

  contextMenu(event, nodeId) {
    const world = this.view.toWorld(event.clientX, event.clientY);
    if (nodeId == null) {
      showMenu([
        { label: "Add node…", hint: "double-click", action: () => this.palette.open(world, { x: event.clientX, y: event.clientY }) },
        { label: "Paste", hint: "Ctrl+V", disabled: !hasClipboard(), action: () => this.paste(world) },
        { separator: true },
        { label: "Select all", hint: "Ctrl+A", action: () => this.view.select([...this.graph.nodes.keys()]) },
        { label: "Fit view", hint: ".", action: () => this.view.fit() },
      ], event.clientX, event.clientY);
      return;
    }
    const node = this.graph.nodes.get(nodeId);
    const widgets = this.graph.def(node)?.widgets || [];
    const asWidgets = widgets.filter((w) => this.graph.convertedSlot(node, w.name) < 0);
    const asInputs = widgets.filter((w) => this.graph.convertedSlot(node, w.name) >= 0);
    const ids = this.selected();
    showMenu([
      { label: "Rename…", hint: "double-click title", action: () => this.rename(nodeId) },
      { label: "Bypass", hint: "Ctrl+B", checked: node.mode === MODE_BYPASSED, action: () => this.setMode(MODE_BYPASSED) },
      { label: "Mute", hint: "Ctrl+M", checked: node.mode === MODE_MUTED, action: () => this.setMode(MODE_MUTED) },
      { label: node.flags?.collapsed ? "Expand" : "Collapse", action: () => this.toggleCollapse(ids) },
      ...(asWidgets.length ? [{ label: "Convert widget to input", items: asWidgets.map((w) => ({
        label: w.name, action: () => this.graph.convertWidgetToInput(node, w.name) })) }] : []),
      ...(asInputs.length ? [{ label: "Convert input to widget", items: asInputs.map((w) => ({
        label: w.name, action: () => this.graph.convertInputToWidget(node, w.name) })) }] : []),
      { separator: true },
      { label: "Copy", hint: "Ctrl+C", action: () => this.copy() },
      { label: "Duplicate", hint: "Ctrl+D", action: () => this.duplicate() },
      { label: "Delete", hint: "Del", action: () => this.deleteSelected() },
    ], event.clientX, event.clientY);
  }

  async workflowMenu(button) {
    let shipped = [];
    try { shipped = await this.api.workflows(); } catch (error) { this.toast(error.message, "error"); }
    const rect = button.getBoundingClientRect();
    showMenu([
      { label: "New (empty)", action: () => this.load({ nodes: [], links: [] }, "Untitled", { fit: true }) },
      { label: "Open…", hint: "Ctrl+O", action: () => this.files.choose() },
      { label: "Open shipped workflow", disabled: !shipped.length,
        items: shipped.map((name) => ({ label: name, action: () => this.files.openShipped(name) })) },
      { separator: true },
      { label: "Save", hint: "Ctrl+S", action: () => this.files.save() },
      { label: "Export API format", action: () => this.files.exportApi() },
    ], rect.left, rect.bottom + 4);
  }
}

async function start() {
  const params = new URLSearchParams(location.search);
  const api = new ApiClient({ token: params.get("token"), clientId: clientId() });
  let info;
  try {
    info = await api.objectInfo();
  } catch (error) {
    $("#canvas").textContent = `Cannot reach the server: ${error.message}`;
    return;
  }
  const editor = new Editor(api, new NodeDefs(info));
  window.sdgraph = editor;
  installShortcuts(editor);
  $("#btn-queue").addEventListener("click", () => editor.runner.queue());
  $("#btn-interrupt").addEventListener("click", () => editor.runner.interrupt());
  $("#btn-undo").addEventListener("click", () => editor.undoStep());
  $("#btn-redo").addEventListener("click", () => editor.redoStep());
  $("#btn-fit").addEventListener("click", () => editor.view.fit());
  $("#btn-add").addEventListener("click", (e) => {
    const rect = editor.view.root.getBoundingClientRect();
    editor.palette.open(editor.view.toWorld(rect.left + rect.width / 2 - 150, rect.top + rect.height / 3), { x: e.clientX, y: e.clientY + 20 });
  });
  $("#btn-workflow").addEventListener("click", (e) => { closeMenu(); editor.workflowMenu(e.currentTarget); });
  editor.view.root.addEventListener("pointermove", (e) => { editor.lastPointer = { x: e.clientX, y: e.clientY }; });

  const saved = loadSaved();
  if (saved) editor.load(saved.workflow, saved.name);
  else await editor.files.openShipped(DEFAULT_WORKFLOW);
  api.connect();
  try { editor.panels.setQueue((await api.queueStatus()).exec_info.queue_remaining); } catch { /* the socket reports it */ }
  await editor.panels.loadHistory();
  document.body.classList.add("ready");
}

// index.html inserts this module dynamically (to pass an access token), so the page may still be parsing.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
