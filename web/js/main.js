/**
 * The editor, wired together: the API client, node definitions from `/object_info`, the graph,
 * the canvas, the runner, files, tabs of open workflows, undo and browser storage. `window.sdgraph`
 * exposes these for scripting and tests. Start-up opens the work saved in this browser tab (or the
 * newest this browser saved), else workflows/txt2img.json.
 */

import { ApiClient } from "./api.js";
import { CanvasView } from "./canvas.js";
import { copyNodes, hasClipboard, pasteNodes } from "./clipboard.js";
import { ask } from "./dialog.js";
import { Files } from "./files.js";
import { Graph, MODE_BYPASSED, MODE_MUTED } from "./graph.js";
import { GroupEditor } from "./groups.js";
import { installKeyboardAccess } from "./keyboard.js";
import { installLinkMenu } from "./link_menu.js";
import { MaskEditor } from "./mask_editor.js";
import { closeMenu, showMenu } from "./menu.js";
import { Minimap } from "./minimap.js";
import { applyModelDefaults } from "./model_defaults.js";
import { NodeDefs } from "./nodedefs.js";
import { Palette } from "./palette.js";
import { Panels } from "./panels.js";
import { PointerController } from "./pointer.js";
import { installRerouteTyping } from "./reroutes.js";
import { QueuePanel } from "./queue_panel.js";
import { Runner } from "./run.js";
import { installShortcuts } from "./shortcuts.js";
import { AutoSave, SessionStore } from "./storage.js";
import { TabStrip, WorkflowTab } from "./tabs.js";
import { editTitle } from "./title_editor.js";
import { applySnapshot, parseSnapshot, snapshotOf, snapshotOfGraph, touchedNodes } from "./undo.js";
import { WorkflowBrowser } from "./workflow_browser.js";

const DEFAULT_WORKFLOW = "txt2img.json";
const EMPTY_WORKFLOW = { nodes: [], links: [] };
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
  constructor(api, defs, store) {
    this.api = api;
    this.defs = defs;
    this.graph = new Graph(defs);
    this.tabs = [];
    this.tab = null;      // the tab shown; its workflow is the graph
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
    this.queuePanel = new QueuePanel(api, this.runner, (text, kind) => this.toast(text, kind));
    this.savedWorkflows = new WorkflowBrowser(this);
    this.palette = new Palette(defs, (type, world, link) => this.addNode(type, world, link));
    this.pointer = new PointerController(this.view, this.graph, {
      refused: (reason) => this.toast(reason, "warn"),
      palette: (world, client, link) => this.palette.open(world, client, link),
      menu: (event, nodeId) => this.contextMenu(event, nodeId),
      rename: (nodeId) => this.rename(nodeId),
    });
    this.strip = new TabStrip($("#tabs"), { select: (tab) => this.switchTo(tab), close: (tab) => this.closeTab(tab),
      add: () => this.openTab(EMPTY_WORKFLOW, "Untitled", { fit: true }) });
    this.autosave = new AutoSave(() => this.sessionState(), store);
    this.graph.addEventListener("change", (e) => this.changed(e.detail));
    this.view.root.addEventListener("pointerup", () => this.autosave.schedule());
    this.view.root.addEventListener("wheel", () => this.autosave.schedule(), { passive: true });
    this.groups = new GroupEditor(this);
    this.maskEditor = new MaskEditor(this);
    this.minimap = new Minimap(this.view, this.graph);
    installRerouteTyping(this.graph);
    installLinkMenu(this);
    this.keyboard = installKeyboardAccess(this);
  }

  toast(text, kind) { return this.panels.toast(text, kind); }
  name() { return this.workflowName; }
  get workflowName() { return this.tab?.name ?? "Untitled"; }
  get undo() { return this.tab.undo; }

  /** What the browser keeps: every tab's name, workflow and saved snapshot. */
  sessionState() {
    if (!this.tab) return null;
    return { active: this.tabs.indexOf(this.tab), tabs: this.tabs.map((tab) => ({ name: tab.name, saved: tab.saved,
      workflow: tab === this.tab ? this.graph.toJSON() : tab.workflow })) };
  }

  snapshot() { return snapshotOfGraph(this.graph, this.workflowName); }

  changed({ kind, only = null, ...detail }) {
    if (kind === "structure" || kind === "mode" || kind === "load") {
      this.view.render({ rebuild: detail.nodes || [],
        only: only ? [...only, ...(detail.retyped || [])] : touchedNodes(this.graph, kind, detail) });
    }
    this.autosave.schedule();
    if (this.restoring || kind === "load") return;
    clearTimeout(this.undoTimer);
    if (kind === "widget") this.undoTimer = setTimeout(() => this.recordUndo(), 400);
    else this.recordUndo();
  }

  recordUndo() {
    clearTimeout(this.undoTimer);
    if (this.tab && this.undo.record(this.snapshot())) this.showName();
  }

  /** The shown workflow's name and unsaved marker, in the toolbar, the tabs and the page title. */
  showName() {
    const dirty = this.tab.dirty;
    $("#workflow-name").textContent = this.workflowName;
    $("#unsaved").hidden = !dirty;
    document.title = `${dirty ? "● " : ""}${this.workflowName} · sdgraph`;
    this.strip.render(this.tabs, this.tab);
  }

  /** The shown workflow was saved to a file: nothing unsaved. */
  markSaved() {
    this.recordUndo();
    this.tab.saved = this.undo.current;
    this.showName();
    this.autosave.schedule();
  }

  widgetChanged(node, name, value) {
    this.graph.setWidgetValue(node, name, value);
    const widget = this.graph.widget(node, name);
    if (widget?.options.image_upload && value) {
      const [subfolder, filename] = value.includes("/") ? [value.slice(0, value.lastIndexOf("/")), value.slice(value.lastIndexOf("/") + 1)] : ["", value];
      this.view.setStatus(node.id, { images: [{ filename, subfolder, type: "input" }] });
    }
  }

  /** Put a UI-format workflow in the graph and on the canvas (no undo step of its own). */
  showWorkflow(ui, { fit = false } = {}) {
    this.view.selection.clear();
    this.restoring = true;
    try {
      this.graph.load(ui);
    } finally {
      this.restoring = false;
    }
    if (fit || !ui.extra?.ds) this.view.fit();
    else this.view.setViewport(ui.extra.ds);
  }

  /**
   * Open a workflow (Open, New, a dropped file, a shipped workflow): in place of the shown one as
   * an undoable step, after asking when that one has unsaved changes (it may go to a new tab instead).
   * `saved`: the workflow comes from a file, so it starts without unsaved changes. Resolves false when cancelled.
   */
  async open(ui, name, { fit = false, saved = true } = {}) {
    if (!this.tab) { this.openTab(ui, name, { fit, saved }); return true; }
    this.recordUndo();
    if (this.tab.dirty) {
      const answer = await ask({ title: "Unsaved changes",
        text: `“${this.workflowName}” has changes that were not saved. Open “${name}” in a new tab, or in its place (Undo brings it back)?`,
        choices: [{ label: "Open in a new tab", value: "tab", primary: true }, { label: "Replace", value: "replace" }] });
      if (answer === null) return false;
      if (answer === "tab") { this.openTab(ui, name, { fit, saved }); return true; }
    }
    this.load(ui, name, { fit, saved });
    return true;
  }

  /** Replace the shown workflow without asking (scripts; `open` asks first); one undo step. */
  load(ui, name, { fit = false, saved = true } = {}) {
    if (!this.tab) { this.openTab(ui, name, { fit, saved }); return; }
    this.recordUndo();
    this.tab.status.clear();
    this.tab.name = name || "Untitled";
    this.showWorkflow(ui, { fit });
    this.recordUndo();
    if (saved) this.tab.saved = this.undo.current;
    this.showName();
    this.autosave.flush();
  }

  /** A workflow in a new tab, shown. */
  openTab(ui, name, { fit = false, saved = true } = {}) {
    const tab = new WorkflowTab({ name });
    this.tabs.push(tab);
    this.switchTo(tab, ui, { fit });
    if (saved) tab.saved = tab.undo.current;
    this.showName();
    this.autosave.flush();
    return tab;
  }

  /** Show another tab; the one shown keeps its workflow, history and run state. */
  switchTo(tab, ui = tab.workflow, { fit = false } = {}) {
    if (tab === this.tab) return;
    if (this.tab) {
      this.recordUndo();
      this.tab.workflow = this.graph.toJSON();
    }
    this.tab = tab;
    this.view.status = tab.status;
    this.showWorkflow(ui || EMPTY_WORKFLOW, { fit });
    tab.workflow = null;
    if (!tab.undo.past.length && !tab.undo.future.length) tab.undo.reset(this.snapshot());
    this.showName();
    this.autosave.schedule();
  }

  /** Close a tab, asking first when it has unsaved changes; the last one closed leaves an empty workflow. */
  async closeTab(tab) {
    if (tab === this.tab) this.recordUndo();
    if (tab.dirty) {
      const answer = await ask({ title: "Unsaved changes", text: `“${tab.name}” has changes that were not saved. Close it anyway?`,
        choices: [{ label: "Close without saving", value: "close" }] });
      if (answer === null) return false;
    }
    const index = this.tabs.indexOf(tab);
    if (index < 0) return false;
    this.tabs.splice(index, 1);
    if (tab === this.tab) {
      this.tab = null;
      if (this.tabs.length) this.switchTo(this.tabs[Math.min(index, this.tabs.length - 1)]);
      else this.openTab(EMPTY_WORKFLOW, "Untitled", { fit: true });
    } else {
      this.showName();
    }
    this.autosave.flush();
    return true;
  }

  /** Reopen the tabs this browser kept (see storage.js). */
  restoreSession(state) {
    for (const kept of state.tabs) {
      const tab = new WorkflowTab({ name: kept.name, workflow: kept.workflow, saved: kept.saved ?? null });
      tab.undo.reset(snapshotOf(kept.workflow, tab.name));
      this.tabs.push(tab);
    }
    const active = this.tabs[Math.max(0, Math.min(this.tabs.length - 1, Number(state.active) || 0))];
    active.undo.reset(null);
    this.switchTo(active);
  }

  restore(snapshot) {
    if (!snapshot) return;
    const { name, workflow } = parseSnapshot(snapshot);
    const ds = { scale: this.view.scale, offset: [...this.view.offset] };
    this.tab.name = name;
    this.restoring = true;
    try {
      applySnapshot(this.graph, workflow);
    } finally {
      this.restoring = false;
    }
    this.view.setViewport(ds);
    this.showName();
    this.autosave.schedule();
  }

  undoStep() { clearTimeout(this.undoTimer); this.recordUndo(); this.restore(this.undo.undo()); }
  redoStep() { this.restore(this.undo.redo()); }

  addNode(type, world, link = null) {
    const node = this.graph.batch(() => {
      const added = this.graph.addNode(type, world);
      applyModelDefaults(this.graph, added);
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
    editTitle({ value: this.graph.title(node), label: "Node title", place: (input) => titleEl.replaceWith(input),
      done: (text) => (text === null ? this.view.renderNodes([nodeId]) : this.graph.setTitle(node, text)) });
  }

  contextMenu(event, nodeId) {
    const world = this.view.toWorld(event.clientX, event.clientY);
    if (nodeId == null) {
      showMenu([
        { label: "Add node…", hint: "double-click", action: () => this.palette.open(world, { x: event.clientX, y: event.clientY }) },
        { label: "Paste", hint: "Ctrl+V", disabled: !hasClipboard(), action: () => this.paste(world) },
        ...this.groups.menuItems(world),
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
      ...(this.maskEditor.uploadWidget(node) ? [{ label: "Open in mask editor", action: () => this.maskEditor.open(node) }] : []),
      ...this.groups.menuItems(world),
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
      { label: "New (empty)", action: () => this.open(EMPTY_WORKFLOW, "Untitled", { fit: true }) },
      { label: "New tab", action: () => this.openTab(EMPTY_WORKFLOW, "Untitled", { fit: true }) },
      { label: "Open…", hint: "Ctrl+O", action: () => this.files.choose() },
      { label: "Open shipped workflow", disabled: !shipped.length,
        items: shipped.map((name) => ({ label: name, action: () => this.files.openShipped(name) })) },
      { separator: true },
      { label: "Save", hint: "Ctrl+S", action: () => this.files.save() },
      { label: "Save as PNG", action: () => this.files.savePng() },
      { label: "Export API format", action: () => this.files.exportApi() },
      { separator: true },
      { label: "Saved on the server…", action: () => this.savedWorkflows.toggle(true) },
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
  const store = new SessionStore();
  const saved = await store.open();
  const editor = new Editor(api, new NodeDefs(info), store);
  window.sdgraph = editor;
  installShortcuts(editor);
  $("#btn-queue").addEventListener("click", () => editor.queuePanel.queueBatch());
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

  if (saved) editor.restoreSession(saved);
  else await editor.files.openShipped(DEFAULT_WORKFLOW);
  if (!editor.tab) editor.openTab(EMPTY_WORKFLOW, "Untitled", { fit: true });
  api.connect();
  try { editor.panels.setQueue((await api.queueStatus()).exec_info.queue_remaining); } catch { /* the socket reports it */ }
  await editor.panels.loadHistory();
  document.body.classList.add("ready");
}

// index.html inserts this module dynamically (to pass an access token), so the page may still be parsing.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
