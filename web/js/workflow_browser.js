/**
 * Workflows saved on the server, in the user's `workflows/` folder (ComfyUI's user-data API), so a
 * workflow saved in one browser opens in another: save the shown one there, and a browser to
 * open, rename and delete them.
 */

import { ApiError } from "./api.js";
import { ask } from "./dialog.js";
import { workflowFromJson } from "./formats.js";
import { el, smallButton } from "./panels.js";

const FOLDER = "workflows";
const $ = (selector) => document.querySelector(selector);

/** "a/b.json" from what a person typed ("a/b", "a/b.json"); null when it names nothing. */
export function workflowFileName(typed) {
  const name = String(typed || "").trim().replace(/^\/+|\/+$/g, "");
  if (!name || name.split("/").some((part) => !part || part === "." || part === "..")) return null;
  return name.toLowerCase().endsWith(".json") ? name : `${name}.json`;
}

export class WorkflowBrowser {
  /** `editor`: {api, defs, graph, files, name(), open(ui, name, opts), markSaved(), toast(text, kind)}. */
  constructor(editor) {
    this.editor = editor;
    this.api = editor.api;
    this.panel = $("#workflow-browser");
    this.list = this.panel.querySelector(".saved-list");
    this.panel.querySelector(".saved-close").addEventListener("click", () => this.toggle(false));
    this.panel.querySelector(".saved-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.saveAs(this.panel.querySelector(".saved-name").value);
    });
  }

  toggle(force) {
    this.panel.hidden = force === undefined ? !this.panel.hidden : !force;
    if (!this.panel.hidden) {
      this.panel.querySelector(".saved-name").value = this.editor.name();
      this.refresh();
    }
  }

  /** The saved workflows' names, relative to the folder. The v2 listing of the whole user folder
   * answers [] before anything is saved, where `?dir=workflows` would answer 404 (a console error). */
  async names() {
    const prefix = `${FOLDER}/`;
    return (await this.api.listUserDataTree())
      .filter((entry) => entry.type === "file" && entry.path.startsWith(prefix) && entry.path.toLowerCase().endsWith(".json"))
      .map((entry) => entry.path.slice(prefix.length))
      .filter((name) => !name.split("/").some((part) => part.startsWith(".")))
      .sort((a, b) => a.localeCompare(b));
  }

  async refresh() {
    let names;
    try { names = await this.names(); } catch (error) {
      this.editor.toast(`Could not list the saved workflows: ${error.message}`, "error");
      return;
    }
    const rows = names.map((name) => this.row(name));
    this.list.replaceChildren(...(rows.length ? rows : [el("p", "saved-empty", "No workflow saved on the server yet.")]));
  }

  row(name) {
    const item = el("div", "saved-item");
    item.dataset.name = name;
    const open = smallButton(name.replace(/\.json$/i, ""), "saved-open", "Open this workflow", () => this.open(name));
    item.append(open,
      smallButton("Rename", "saved-rename", "Give it another name", () => this.startRename(item, name)),
      smallButton("Delete", "saved-delete", "Delete it from the server", () => this.remove(name)));
    return item;
  }

  /** Save the shown workflow as `typed` (asking before replacing another); true when saved. */
  async saveAs(typed) {
    const file = workflowFileName(typed);
    if (!file) { this.editor.toast("Give the workflow a name.", "warn"); return false; }
    const body = JSON.stringify(this.editor.files.uiForSaving(), null, 2);
    try {
      if ((await this.names()).includes(file)) {
        const answer = await ask({ title: "Replace it?", text: `A workflow named “${file}” is already saved on the server.`,
          choices: [{ label: "Replace", value: "replace", primary: true }] });
        if (answer === null) return false;
      }
      await this.api.writeUserData(`${FOLDER}/${file}`, body);
    } catch (error) {
      this.editor.toast(`Could not save on the server: ${error.message}`, "error");
      return false;
    }
    if (this.editor.tab) this.editor.tab.name = file.replace(/\.json$/i, "");
    this.editor.markSaved();
    this.editor.toast(`Saved “${file}” on the server.`, "info");
    if (!this.panel.hidden) this.refresh();
    return true;
  }

  async open(name) {
    try {
      const data = await this.api.readUserData(`${FOLDER}/${name}`);
      const ui = workflowFromJson(typeof data === "string" ? JSON.parse(data) : data, this.editor.defs);
      if (await this.editor.open(ui, name.replace(/\.json$/i, ""), { fit: !ui.extra?.ds })) this.toggle(false);
    } catch (error) {
      this.editor.toast(`Could not open ${name}: ${error.message}`, "error");
    }
  }

  /** Rename in place: the name becomes a field; Enter moves the file, Escape keeps it. */
  startRename(item, name) {
    const input = Object.assign(el("input", "saved-rename-input"), { value: name.replace(/\.json$/i, "") });
    input.setAttribute("aria-label", "New name");
    item.querySelector(".saved-open").replaceWith(input);
    input.focus();
    input.select();
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "Enter") this.rename(name, input.value);
      if (e.key === "Escape") this.refresh();
    });
  }

  async rename(name, typed) {
    const dest = workflowFileName(typed);
    if (!dest) { this.editor.toast("Give the workflow a name.", "warn"); return; }
    if (dest !== name) {
      try {
        if ((await this.names()).includes(dest)) throw new ApiError(409, null, "taken");
        await this.api.moveUserData(`${FOLDER}/${name}`, `${FOLDER}/${dest}`);
      } catch (error) {
        const taken = error instanceof ApiError && error.status === 409;
        this.editor.toast(taken ? `A workflow named “${dest}” already exists.` : `Could not rename: ${error.message}`, "error");
      }
    }
    this.refresh();
  }

  async remove(name) {
    const answer = await ask({ title: "Delete it?", text: `Delete “${name}” from the server? This cannot be undone.`,
      choices: [{ label: "Delete", value: "delete" }] });
    if (answer === null) return;
    try {
      await this.api.deleteUserData(`${FOLDER}/${name}`);
    } catch (error) {
      this.editor.toast(`Could not delete ${name}: ${error.message}`, "error");
    }
    this.refresh();
  }
}
