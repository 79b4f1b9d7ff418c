/**
 * Open workflows as tabs. A tab is one document: its name, its undo history, the snapshot it
 * was last saved (or opened) as, and, while another tab is shown, its workflow and run state.
 * The strip draws them with an unsaved marker; the editor decides what switching means.
 */

import { UndoStack } from "./undo.js";

let nextTabId = 1;

export class WorkflowTab {
  constructor({ name = "Untitled", workflow = null, saved = null } = {}) {
    this.id = nextTabId++;
    this.name = name || "Untitled";
    this.workflow = workflow;   // the UI-format workflow while the tab is not shown
    this.saved = saved;         // the snapshot last saved or opened; null: never saved
    this.undo = new UndoStack();
    this.status = new Map();    // what the canvas showed on its nodes (images, errors)
  }

  /** Whether the tab holds changes that were never saved. */
  get dirty() { return this.undo.current !== null && this.undo.current !== this.saved; }
}

export class TabStrip {
  /** `actions`: {select(tab), close(tab), add()} */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    root.setAttribute("role", "tablist");
  }

  render(tabs, active) {
    const items = tabs.map((tab) => {
      const item = document.createElement("div");
      item.className = `tab${tab === active ? " active" : ""}${tab.dirty ? " unsaved" : ""}`;
      item.dataset.tab = String(tab.id);
      item.setAttribute("role", "tab");
      item.setAttribute("aria-selected", String(tab === active));
      item.title = tab.dirty ? `${tab.name} (unsaved changes)` : tab.name;
      const name = Object.assign(document.createElement("span"), { className: "tab-name", textContent: tab.name });
      const marker = Object.assign(document.createElement("span"), { className: "tab-unsaved", textContent: "●" });
      marker.setAttribute("aria-label", "unsaved changes");
      const close = Object.assign(document.createElement("button"), { type: "button", className: "tab-close", textContent: "×",
        title: "Close this workflow" });
      close.setAttribute("aria-label", `Close ${tab.name}`);
      close.addEventListener("click", (e) => { e.stopPropagation(); this.actions.close(tab); });
      item.addEventListener("click", () => this.actions.select(tab));
      item.append(name, marker, close);
      return item;
    });
    const add = Object.assign(document.createElement("button"), { type: "button", className: "tab-add", textContent: "+",
      title: "A new, empty workflow in a new tab" });
    add.setAttribute("aria-label", "New tab");
    add.addEventListener("click", () => this.actions.add());
    this.root.replaceChildren(...items, add);
  }
}
