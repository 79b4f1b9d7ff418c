/**
 * Files: open (JSON in either format, or a PNG carrying a workflow: ours, ComfyUI's or
 * Automatic1111's), save our UI format (as JSON or in a PNG), export the API format, open a shipped
 * workflow, drag and drop onto the page, and upload an image for LoadImage (from its button, or dropped on it).
 */

import { workflowFromJson } from "./formats.js";
import { workflowPng } from "./png_save.js";
import { isPng, readPngText } from "./pngmeta.js";

/** Download `text` (JSON) or a Blob as a file named `name`. */
function download(name, text) {
  const url = URL.createObjectURL(text instanceof Blob ? text : new Blob([text], { type: "application/json" }));
  const a = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const baseName = (name) => String(name || "workflow").replace(/\.(json|png|webp|jpe?g)$/i, "");

export class Files {
  /** `editor`: {graph, view, defs, api, toast(text, kind), open(ui, name, opts), markSaved(), name()}; opening asks before discarding unsaved work. */
  constructor(editor) {
    this.editor = editor;
    this.picker = Object.assign(document.createElement("input"), { type: "file", hidden: true,
      accept: ".json,.png,application/json,image/png" });
    this.picker.addEventListener("change", () => {
      if (this.picker.files[0]) this.open(this.picker.files[0]);
      this.picker.value = "";
    });
    document.body.append(this.picker);
    window.addEventListener("dragover", (e) => {
      e.preventDefault();
      document.body.classList.add("drop-hover");
    });
    window.addEventListener("dragleave", (e) => { if (!e.relatedTarget) document.body.classList.remove("drop-hover"); });
    window.addEventListener("drop", (e) => this.drop(e));
  }

  choose() { this.picker.click(); }

  /** Load a workflow from a File (JSON or PNG). */
  async open(file) {
    try {
      const buffer = await file.arrayBuffer();
      if (isPng(new Uint8Array(buffer, 0, Math.min(8, buffer.byteLength)))) {
        await this.openPng(buffer, file.name);
      } else {
        let data;
        try { data = JSON.parse(new TextDecoder().decode(buffer)); } catch {
          throw new Error(`${file.name} is neither JSON nor a PNG image.`);
        }
        await this.editor.open(workflowFromJson(data, this.editor.defs), baseName(file.name), { fit: !data?.extra?.ds });
      }
    } catch (error) {
      this.editor.toast(`Could not open ${file.name}: ${error.message}`, "error");
    }
  }

  /** A PNG: its `workflow` chunk, else its `prompt`, else the server converts it (A1111 parameters). */
  async openPng(buffer, name) {
    const text = await readPngText(buffer);
    let ui = null;
    for (const key of ["workflow", "prompt"]) {
      if (ui || !text[key]) continue;
      try { ui = workflowFromJson(JSON.parse(text[key]), this.editor.defs); } catch { ui = null; }
    }
    if (!ui) {
      const api = await this.editor.api.convert(new Blob([buffer], { type: "image/png" }));
      ui = workflowFromJson(api, this.editor.defs);
    }
    await this.editor.open(ui, baseName(name), { fit: !ui.extra?.ds });
  }

  async openImage(image) {
    try {
      const response = await fetch(this.editor.api.viewUrl(image));
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      await this.openPng(await response.arrayBuffer(), image.filename);
    } catch (error) {
      this.editor.toast(`Could not open the workflow of ${image.filename}: ${error.message}`, "error");
    }
  }

  async openShipped(name) {
    try {
      const data = await this.editor.api.workflow(name);
      const ui = workflowFromJson(data, this.editor.defs);
      await this.editor.open(ui, baseName(name), { fit: true });
    } catch (error) {
      this.editor.toast(`Could not open ${name}: ${error.message}`, "error");
    }
  }

  /** The UI format, each node with the size it is drawn at (as ComfyUI saves it; the view keeps it, not the graph). */
  uiForSaving() {
    const { graph, view } = this.editor;
    const ui = graph.toJSON();
    for (const node of ui.nodes) {
      const shown = graph.nodes.get(node.id);
      if (shown && !shown.flags?.collapsed) node.size = view.drawnSize(shown);
    }
    return ui;
  }

  save() {
    download(`${this.editor.name()}.json`, JSON.stringify(this.uiForSaving(), null, 2));
    this.editor.markSaved();
  }

  /** Download a PNG carrying the workflow (see png_save.js). */
  async savePng() {
    const { api, graph, view } = this.editor;
    try {
      download(`${this.editor.name()}.png`, await workflowPng({ api, graph, view, ui: this.uiForSaving() }));
      this.editor.markSaved();
    } catch (error) {
      this.editor.toast(`Save as PNG failed: ${error.message}`, "error");
    }
  }

  async exportApi() {
    try {
      const api = await this.editor.api.convert(this.editor.graph.toJSON());
      download(`${this.editor.name()}_api.json`, JSON.stringify(api, null, 2));
    } catch (error) {
      this.editor.toast(`Export failed: ${error.message}`, "error");
    }
  }

  drop(e) {
    e.preventDefault();
    document.body.classList.remove("drop-hover");
    const file = e.dataTransfer?.files?.[0];
    if (!file) return;
    const nodeEl = e.target.closest?.(".node");
    const node = nodeEl ? this.editor.graph.nodes.get(Number(nodeEl.dataset.nodeId)) : null;
    const upload = node && this.editor.graph.def(node)?.widgets.find((w) => w.options.image_upload);
    if (upload && file.type.startsWith("image/")) this.upload(node, upload.name, file);
    else this.open(file);
  }

  /** Upload into the input folder and select it on the node. */
  async upload(node, widgetName, file) {
    const { graph, api, view } = this.editor;
    try {
      const answer = await api.uploadImage(file);
      const name = answer.subfolder ? `${answer.subfolder}/${answer.name}` : answer.name;
      const widget = graph.widget(node, widgetName);
      const choices = widget.options.choices;
      if (!choices.includes(name)) choices.push(name);
      graph.setWidgetValue(node, widgetName, name);
      view.setStatus(node.id, { images: [{ filename: answer.name, subfolder: answer.subfolder, type: answer.type }] });
      view.renderNodes([node.id]);
      this.editor.toast(`Uploaded ${name}`, "info");
    } catch (error) {
      this.editor.toast(`Upload failed: ${error.message}`, "error");
    }
  }
}
