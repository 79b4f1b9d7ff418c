/**
 * The server's public API (ComfyUI-compatible HTTP + WebSocket), and nothing else.
 *
 * Every request goes through `ApiClient`; WebSocket events are re-dispatched as DOM events
 * (`api.addEventListener("executing", e => e.detail)`), binary preview frames as `preview`
 * events carrying `{blob, node}`. An access token given in the page URL (`?token=`) is sent as a
 * Bearer header on fetches and as `?token=` where a browser cannot set headers (WebSocket, <img>).
 */

export class ApiError extends Error {
  constructor(status, body, fallback) {
    const error = body && body.error;
    super((error && (error.message + (error.details ? `: ${error.details}` : ""))) || fallback);
    this.status = status;
    this.body = body;
  }
}

const PREVIEW_IMAGE = 1;
const PREVIEW_IMAGE_WITH_METADATA = 4;
const IMAGE_TYPES = { 1: "image/jpeg", 2: "image/png" };

export class ApiClient extends EventTarget {
  constructor({ base = "", token = null, clientId } = {}) {
    super();
    this.base = base;
    this.token = token;
    this.clientId = clientId;
    this.socket = null;
    this.reconnectDelay = 500;
    this.closed = false;
  }

  /** An absolute URL for GET `path` (token included, since <img> cannot send headers). */
  url(path, params = {}) {
    const url = new URL(this.base + path, location.href);
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null) url.searchParams.set(key, value);
    }
    if (this.token) url.searchParams.set("token", this.token);
    return url.toString();
  }

  async request(method, path, body) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let payload;
    if (body instanceof FormData || body instanceof Blob || body instanceof ArrayBuffer) {
      payload = body;
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(new URL(this.base + path, location.href), { method, headers, body: payload });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    if (!response.ok) throw new ApiError(response.status, data, `${method} ${path}: HTTP ${response.status}`);
    return data;
  }

  objectInfo() { return this.request("GET", "/object_info"); }
  workflows() { return this.request("GET", "/workflows"); }
  workflow(name) { return this.request("GET", `/workflows/${encodeURIComponent(name)}`); }
  queueStatus() { return this.request("GET", "/prompt"); }
  history(maxItems = 32) { return this.request("GET", `/history?max_items=${maxItems}`); }
  /** Interrupt the running prompt; with `promptId`, only if that one is running. */
  interrupt(promptId) { return this.request("POST", "/interrupt", promptId ? { prompt_id: promptId } : {}); }
  clearQueue() { return this.request("POST", "/queue", { clear: true }); }
  queue() { return this.request("GET", "/queue"); }
  deleteFromQueue(promptIds) { return this.request("POST", "/queue", { delete: promptIds }); }

  /** The user's files on the server (ComfyUI's user-data API); `file` is relative to the user's folder. */
  userDataPath(file) { return `/userdata/${encodeURIComponent(file)}`; }
  /** Everything in the user's folder: `[{name, path, type: "file"|"directory", size?, modified?}]`. */
  listUserDataTree() { return this.request("GET", "/v2/userdata"); }
  readUserData(file) { return this.request("GET", this.userDataPath(file)); }
  writeUserData(file, body, { overwrite = true } = {}) {
    return this.request("POST", `${this.userDataPath(file)}?overwrite=${overwrite}`, new Blob([body]));
  }
  deleteUserData(file) { return this.request("DELETE", this.userDataPath(file)); }
  moveUserData(file, dest, { overwrite = false } = {}) {
    return this.request("POST", `${this.userDataPath(file)}/move/${encodeURIComponent(dest)}?overwrite=${overwrite}`);
  }

  /** UI format (object) or PNG bytes (Blob) → API format, converted by the server. */
  convert(workflowOrBlob) { return this.request("POST", "/workflow/convert", workflowOrBlob); }

  /** POST /prompt (`front`: ahead of the waiting ones); resolves to the server's answer, rejects with an ApiError carrying `node_errors`. */
  queuePrompt(prompt, workflow, { front = false } = {}) {
    return this.request("POST", "/prompt", {
      prompt, client_id: this.clientId, extra_data: { extra_pnginfo: { workflow } }, ...(front ? { front } : {}),
    });
  }

  async uploadImage(file, { overwrite = false } = {}) {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("type", "input");
    if (overwrite) form.append("overwrite", "true");
    return this.request("POST", "/upload/image", form);
  }

  viewUrl({ filename, subfolder = "", type = "output" }, extra = {}) {
    return this.url("/view", { filename, subfolder, type, ...extra });
  }

  /** Open the event socket (reconnecting when it drops) and ask for previews with node ids. */
  connect() {
    this.closed = false;
    const url = new URL(this.url("/ws", { clientId: this.clientId }));
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.reconnectDelay = 500;
      socket.send(JSON.stringify({ type: "feature_flags", data: { supports_preview_metadata: true } }));
      this.emit("connected", {});
    });
    socket.addEventListener("message", (event) => this.onMessage(event.data));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.emit("disconnected", {});
      if (!this.closed) {
        setTimeout(() => { if (!this.closed) this.connect(); }, this.reconnectDelay);
        this.reconnectDelay = Math.min(this.reconnectDelay * 2, 10_000);
      }
    });
  }

  disconnect() {
    this.closed = true;
    if (this.socket) this.socket.close();
  }

  onMessage(data) {
    if (typeof data === "string") {
      let message;
      try { message = JSON.parse(data); } catch { return; }
      if (message && typeof message.type === "string") this.emit(message.type, message.data || {});
      return;
    }
    const view = new DataView(data);
    if (view.byteLength < 8) return;
    const kind = view.getUint32(0);
    if (kind === PREVIEW_IMAGE) {
      const type = IMAGE_TYPES[view.getUint32(4)] || "image/jpeg";
      this.emit("preview", { blob: new Blob([data.slice(8)], { type }), node: null });
    } else if (kind === PREVIEW_IMAGE_WITH_METADATA) {
      const length = view.getUint32(4);
      let meta = {};
      try { meta = JSON.parse(new TextDecoder().decode(data.slice(8, 8 + length))); } catch { /* keep {} */ }
      this.emit("preview", {
        blob: new Blob([data.slice(8 + length)], { type: meta.image_type || "image/jpeg" }),
        node: meta.display_node_id ?? meta.node_id ?? null, promptId: meta.prompt_id,
      });
    }
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}
