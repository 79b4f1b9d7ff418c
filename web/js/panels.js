/**
 * The panels around the canvas: the toolbar's run status (current node, progress, queue length,
 * connection), toasts, the history sidebar of output images and the image viewer.
 */

const $ = (selector) => document.querySelector(selector);

/** An element with a class and a text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

/** A small button of a panel's rows. */
export function smallButton(label, className, title, onClick) {
  const b = el("button", `button small ${className}`, label);
  b.type = "button";
  if (title) b.title = title;
  b.addEventListener("click", onClick);
  return b;
}

export class Panels {
  /** `openImageWorkflow(image)`: load the workflow a history image carries. */
  constructor(api, { openImageWorkflow }) {
    this.api = api;
    this.openImageWorkflow = openImageWorkflow;
    this.toasts = $("#toasts");
    this.history = $("#history-list");
    this.seen = new Set();
    $("#btn-history").addEventListener("click", () => this.toggleSidebar());
    $("#btn-clear-history")?.addEventListener("click", () => { this.history.replaceChildren(); this.seen.clear(); this.emptyHint(); });
    api.addEventListener("connected", () => this.setConnected(true));
    api.addEventListener("disconnected", () => this.setConnected(false));
  }

  toast(text, kind = "info", ms = kind === "error" ? 7000 : 3500) {
    const toast = el("div", `toast ${kind}`, text);
    toast.setAttribute("role", kind === "error" ? "alert" : "status");
    toast.addEventListener("click", () => toast.remove());
    this.toasts.append(toast);
    while (this.toasts.children.length > 4) this.toasts.firstChild.remove();
    setTimeout(() => toast.remove(), ms);
    return toast;
  }

  setQueue(remaining) {
    $("#queue-size").textContent = `Queue: ${remaining}`;
    $("#queue-size").classList.toggle("busy", remaining > 0);
  }

  /** `text` null keeps the label; `fraction` null hides the bar. */
  setRunStatus(text, fraction) {
    const status = $("#run-status");
    if (text !== null) status.querySelector(".run-text").textContent = text || "Idle";
    const bar = status.querySelector(".run-progress");
    bar.hidden = fraction === null;
    if (fraction !== null) bar.firstElementChild.style.width = `${Math.round(fraction * 100)}%`;
  }

  setConnected(connected) {
    const dot = $("#connection");
    dot.classList.toggle("online", connected);
    dot.title = connected ? "Connected to the server" : "Not connected: reconnecting…";
  }

  toggleSidebar(force) {
    const sidebar = $("#sidebar");
    sidebar.hidden = force === undefined ? !sidebar.hidden : !force;
    $("#btn-history").classList.toggle("active", !sidebar.hidden);
  }

  emptyHint() {
    if (!this.history.children.length) this.history.append(el("p", "history-empty", "Images you generate appear here."));
  }

  /** Fill the history from the server (newest first). */
  async loadHistory() {
    try {
      const entries = Object.entries(await this.api.history(24));
      for (const [promptId, entry] of entries) {
        const images = Object.values(entry.outputs || {}).flatMap((o) => o.images || []);
        this.addOutputs(promptId, images);
      }
    } catch (error) {
      this.toast(`Could not read the history: ${error.message}`, "error");
    }
    this.emptyHint();
  }

  addOutputs(promptId, images) {
    this.history.querySelector(".history-empty")?.remove();
    for (const image of images) {
      const key = `${image.type}/${image.subfolder}/${image.filename}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      const item = el("button", "history-item");
      item.type = "button";
      item.title = image.filename;
      item.dataset.promptId = promptId;
      const img = el("img");
      img.src = this.api.viewUrl(image);
      img.alt = image.filename;
      img.loading = "lazy";
      item.append(img);
      item.addEventListener("click", () => this.showImage(image));
      this.history.prepend(item);
    }
  }

  /** The image viewer: the full image, a download link and "Open workflow". */
  showImage(image) {
    const overlay = el("div", "lightbox");
    const frame = el("figure", "lightbox-frame");
    const img = el("img");
    img.src = this.api.viewUrl(image);
    img.alt = image.filename;
    const caption = el("figcaption");
    const name = el("span", "lightbox-name", image.filename);
    const open = el("button", "button", "Open its workflow");
    open.type = "button";
    open.addEventListener("click", () => { overlay.remove(); this.openImageWorkflow(image); });
    const download = el("a", "button", "Download");
    download.href = img.src;
    download.download = image.filename;
    const close = el("button", "button", "Close");
    close.type = "button";
    close.addEventListener("click", () => overlay.remove());
    caption.append(name, open, download, close);
    frame.append(img, caption);
    overlay.append(frame);
    overlay.addEventListener("click", (e) => { if (e.target === overlay) overlay.remove(); });
    document.addEventListener("keydown", function escape(e) {
      if (e.key === "Escape") { overlay.remove(); document.removeEventListener("keydown", escape); }
    });
    document.body.append(overlay);
  }
}
