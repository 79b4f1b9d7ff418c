/**
 * The queue panel: the prompts running and waiting on the server (this tab's and other clients'),
 * cancel one, clear all, run the workflow first in line (ComfyUI's `front`), a batch count for the
 * next run, and a notice when a run was served entirely from the cache.
 */

import { el, smallButton } from "./panels.js";

const $ = (selector) => document.querySelector(selector);
const MAX_BATCH = 100;

export class QueuePanel {
  /** `runner`: queue({front}) and `mine` (prompt ids queued here); `toast(text, kind)`. */
  constructor(api, runner, toast) {
    this.api = api;
    this.runner = runner;
    this.toast = toast;
    this.panel = $("#queue-panel");
    this.list = this.panel.querySelector(".queue-list");
    this.batch = $("#batch-count");
    this.ran = new Map();   // prompt id → {cached, ran}: what its run did, for the "nothing changed" notice
    $("#queue-size").addEventListener("click", () => this.toggle());
    this.panel.querySelector(".queue-clear").addEventListener("click", () => this.clearAll());
    this.panel.querySelector(".queue-front").addEventListener("click", () => this.queueBatch({ front: true }));
    for (const type of ["status", "execution_start", "execution_success", "execution_error", "execution_interrupted"]) {
      api.addEventListener(type, () => this.refresh());
    }
    api.addEventListener("execution_start", (e) => this.ran.set(e.detail.prompt_id, { cached: 0, ran: 0 }));
    api.addEventListener("execution_cached", (e) => this.count(e.detail.prompt_id, "cached", e.detail.nodes?.length || 0));
    api.addEventListener("executing", (e) => { if (e.detail.node != null) this.count(e.detail.prompt_id, "ran", 1); });
    api.addEventListener("execution_success", (e) => this.finished(e.detail.prompt_id));
  }

  /** How many prompts the next run queues (the toolbar's batch count, 1 to 100). */
  batchCount() {
    const n = Math.round(Number(this.batch?.value));
    return Number.isFinite(n) ? Math.max(1, Math.min(MAX_BATCH, n)) : 1;
  }

  /** Queue the workflow batch-count times (each with the next seed, as ComfyUI does); stops at a refusal. */
  async queueBatch({ front = false } = {}) {
    const ids = [];
    for (let i = 0; i < this.batchCount(); i++) {
      const id = await this.runner.queue({ front });
      if (id == null) break;
      ids.push(id);
    }
    this.refresh();
    return ids;
  }

  toggle(force) {
    this.panel.hidden = force === undefined ? !this.panel.hidden : !force;
    $("#queue-size").classList.toggle("active", !this.panel.hidden);
    if (!this.panel.hidden) this.refresh();
  }

  /** Re-read GET /queue while the panel is shown (answers arriving out of order are dropped). */
  async refresh() {
    if (this.panel.hidden) return;
    const ticket = (this.ticket = (this.ticket || 0) + 1);
    let queue;
    try { queue = await this.api.queue(); } catch (error) {
      this.toast(`Could not read the queue: ${error.message}`, "error");
      return;
    }
    if (ticket !== this.ticket) return;
    this.render(queue.queue_running || [], queue.queue_pending || []);
  }

  render(running, pending) {
    const byNumber = (a, b) => a[0] - b[0];
    const rows = [...running.map((item) => this.row(item, true)),
      ...[...pending].sort(byNumber).map((item) => this.row(item, false))];
    this.list.replaceChildren(...(rows.length ? rows : [el("p", "queue-empty", "Nothing is running or waiting.")]));
  }

  /** One prompt: ComfyUI's queue item `[number, prompt_id, prompt, extra_data, outputs]`. */
  row([number, promptId, prompt, extraData], running) {
    const mine = this.runner.mine.has(promptId) || extraData?.client_id === this.api.clientId;
    const item = el("div", `queue-item ${running ? "running" : "pending"}${mine ? " mine" : ""}`);
    item.dataset.promptId = promptId;
    const nodes = Object.keys(prompt || {}).length;
    item.append(el("span", "queue-number", `#${number}`),
      el("span", "queue-state", running ? "running" : "waiting"),
      el("span", "queue-what", `${nodes} node${nodes === 1 ? "" : "s"} · ${mine ? "this tab" : "another client"}`),
      smallButton(running ? "Stop" : "Cancel", "queue-cancel",
        running ? "Interrupt this prompt" : "Take it out of the queue", () => this.cancel(promptId, running)));
    return item;
  }

  async cancel(promptId, running) {
    try {
      if (running) await this.api.interrupt(promptId);
      else await this.api.deleteFromQueue([promptId]);
    } catch (error) {
      this.toast(`Could not cancel: ${error.message}`, "error");
    }
    this.refresh();
  }

  /** Clear every waiting prompt (the running one goes on; Interrupt stops it). */
  async clearAll() {
    try {
      const { removed } = await this.api.clearQueue();
      this.toast(`Removed ${removed} waiting prompt${removed === 1 ? "" : "s"}.`, "info");
    } catch (error) {
      this.toast(`Could not clear the queue: ${error.message}`, "error");
    }
    this.refresh();
  }

  count(promptId, key, n) {
    const entry = this.ran.get(promptId);
    if (entry) entry[key] += n;
  }

  /** A run of ours where no node ran: say so, or it looks as if Queue did nothing. */
  finished(promptId) {
    const entry = this.ran.get(promptId);
    this.ran.delete(promptId);
    if (!entry || entry.ran || !this.runner.mine.has(promptId)) return;
    this.toast(`Nothing changed: 0 nodes ran (${entry.cached} from the cache).`, "info");
  }
}
