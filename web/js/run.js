/**
 * Running the graph: Queue sends the API format (converted by the server from our UI format,
 * so bypass, reroutes and primitives resolve exactly as for ComfyUI files) with the UI workflow
 * in `extra_pnginfo`; then WebSocket events drive what nodes show: the executing node, its
 * progress, live previews, output images, and errors in words.
 */

import { ApiError } from "./api.js";
import { describeExecutionError, describeInputError, describePromptError } from "./errors.js";
import { nextSeed } from "./widgets.js";

/** The editor node a server node id belongs to ("12:3" inside a subgraph instance belongs to 12). */
export function editorNodeId(serverId) {
  if (serverId == null) return null;
  const id = Number.parseInt(String(serverId).split(":")[0], 10);
  return Number.isFinite(id) ? id : null;
}

export class Runner extends EventTarget {
  constructor({ api, graph, view, ui }) {
    super();
    this.api = api;
    this.graph = graph;
    this.view = view;
    this.ui = ui;               // toast(text, kind), setQueue(n), setRunStatus(text, fraction), addOutputs(...)
    this.mine = new Set();      // prompt ids queued from this page
    this.current = null;        // executing editor node id
    this.previewUrl = null;
    const on = (type, handler) => api.addEventListener(type, (e) => handler.call(this, e.detail));
    on("status", this.onStatus);
    on("execution_start", this.onStart);
    on("executing", this.onExecuting);
    on("progress", this.onProgress);
    on("preview", this.onPreview);
    on("executed", this.onExecuted);
    on("execution_success", () => this.ui.setRunStatus("Finished", null));
    on("execution_error", this.onError);
    on("execution_interrupted", () => { this.ui.toast("Interrupted.", "warn"); this.ui.setRunStatus("Interrupted", null); });
  }

  /** Validate and queue the current graph (`front`: first in line); returns the prompt id, or null when refused. */
  async queue({ front = false } = {}) {
    const workflow = this.graph.toJSON();
    let prompt;
    try {
      prompt = await this.api.convert(workflow);
    } catch (error) {
      this.refused(error);
      return null;
    }
    try {
      const answer = await this.api.queuePrompt(prompt, workflow, { front });
      // A fast run can start, and even finish, before this answer arrives (onStart already added it to `mine`):
      // then "Queued" would be stale.
      const begun = this.mine.has(answer.prompt_id);
      this.mine.add(answer.prompt_id);
      this.view.clearStatus("errors");
      this.advanceSeeds();
      if (!begun) this.ui.setRunStatus("Queued", null);
      this.dispatchEvent(new CustomEvent("queued", { detail: answer }));
      return answer.prompt_id;
    } catch (error) {
      this.refused(error);
      return null;
    }
  }

  refused(error) {
    if (!(error instanceof ApiError)) {
      this.ui.toast(`Could not reach the server: ${error.message}`, "error");
      return;
    }
    const nodeErrors = error.body?.node_errors || {};
    this.showNodeErrors(nodeErrors);
    const count = Object.keys(nodeErrors).length;
    const nodeId = editorNodeId(error.body?.error?.extra_info?.node_id ?? error.body?.error?.node_id);
    if (nodeId != null && !count) this.view.setStatus(nodeId, { errors: [{ input: null, text: error.message }] });
    this.ui.toast(count ? describePromptError(error.body.error, count) : error.message, "error");
  }

  showNodeErrors(nodeErrors) {
    this.view.clearStatus("errors");
    const perNode = new Map();
    for (const [serverId, entry] of Object.entries(nodeErrors)) {
      const id = editorNodeId(serverId);
      if (id == null || !this.graph.nodes.has(id)) continue;
      const list = perNode.get(id) || [];
      list.push(...(entry.errors || []).map(describeInputError));
      perNode.set(id, list);
    }
    for (const [id, errors] of perNode) this.view.setStatus(id, { errors });
    const first = [...perNode.keys()][0];
    if (first != null && !this.view.isVisible(first)) this.view.reveal(first);
  }

  /** control_after_generate: seeds change after each queued run, as in ComfyUI. */
  advanceSeeds() {
    let changed = false;
    for (const node of this.graph.nodes.values()) {
      for (const widget of this.graph.def(node)?.widgets || []) {
        if (widget.kind !== "seed" || this.graph.convertedSlot(node, widget.name) >= 0) continue;
        const control = this.graph.seedControl(node, widget.name);
        const value = Number(this.graph.widgetValue(node, widget.name));
        const next = nextSeed(widget, value, control);
        if (next === value) continue;
        this.graph.setWidgetValue(node, widget.name, next, { silent: true });
        this.view.elements.get(node.id)?.querySelector(`.widget[data-widget="${widget.name}"]`)?.setValue(next);
        changed = true;
      }
    }
    if (changed) this.graph.changed("widget", { seeds: true });
  }

  async interrupt() {
    try {
      await this.api.interrupt();
    } catch (error) {
      this.ui.toast(`Interrupt failed: ${error.message}`, "error");
    }
  }

  // --- events --------------------------------------------------------------------------

  onStatus(data) {
    const remaining = data.status?.exec_info?.queue_remaining;
    if (typeof remaining === "number") this.ui.setQueue(remaining);
  }

  onStart(data) {
    this.mine.add(data.prompt_id);
    this.view.clearStatus("executing");
    this.view.clearStatus("progress");
    this.ui.setRunStatus("Running", 0);
  }

  onExecuting(data) {
    if (this.current != null) this.view.setStatus(this.current, { executing: false, progress: undefined });
    this.current = editorNodeId(data.display_node ?? data.node);
    if (this.current == null) {
      this.clearPreview();
      this.ui.setRunStatus(null, null);
      return;
    }
    this.view.setStatus(this.current, { executing: true });
    const node = this.graph.nodes.get(this.current);
    this.ui.setRunStatus(node ? this.graph.title(node) : `node ${this.current}`, null);
  }

  onProgress(data) {
    const id = editorNodeId(data.node) ?? this.current;
    if (data.text) this.ui.toast(data.text);  // a notice ("compiling UNet for this CPU, one-time"), not a step
    if (id == null) return;
    this.view.setStatus(id, { progress: { value: data.value, max: data.max } });
    this.ui.setRunStatus(null, data.value / Math.max(1, data.max));
  }

  onPreview({ blob, node }) {
    const id = editorNodeId(node) ?? this.current;
    if (id == null) return;
    const url = URL.createObjectURL(blob);
    this.view.setStatus(id, { preview: url });
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl.url);
    this.previewUrl = { id, url };
  }

  clearPreview() {
    if (!this.previewUrl) return;
    this.view.setStatus(this.previewUrl.id, { preview: undefined });
    URL.revokeObjectURL(this.previewUrl.url);
    this.previewUrl = null;
  }

  onExecuted(data) {
    const id = editorNodeId(data.display_node ?? data.node);
    const images = data.output?.images || [];
    if (id != null && images.length) {
      if (this.previewUrl?.id === id) this.clearPreview();
      this.view.setStatus(id, { images, preview: undefined });
    }
    if (images.length) this.ui.addOutputs(data.prompt_id, images);
  }

  onError(data) {
    const id = editorNodeId(data.node_id);
    if (id != null) this.view.setStatus(id, { errors: [describeExecutionError(data)] });
    this.ui.toast(`${data.node_type || "A node"} failed: ${data.exception_message || "error"}`, "error");
    this.ui.setRunStatus("Failed", null);
  }
}
