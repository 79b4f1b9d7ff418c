/**
 * Keyboard shortcuts (ignored while typing in a field): Ctrl+Enter queue, Ctrl+Z / Ctrl+Y
 * (Ctrl+Shift+Z) undo/redo, Delete, Ctrl+C / Ctrl+V / Ctrl+D copy, paste, duplicate, Ctrl+A select
 * all, Ctrl+B bypass, Ctrl+M mute, Ctrl+S save, Ctrl+O open, "." fit to view. Moving around nodes,
 * sockets and menus with the keyboard is keyboard.js's.
 */

import { MODE_BYPASSED, MODE_MUTED } from "./graph.js";

function typing(target) {
  return Boolean(target.closest?.("input, textarea, select, [contenteditable]"));
}

export function installShortcuts(editor) {
  document.addEventListener("keydown", (e) => {
    if (document.querySelector(".dialog-backdrop")) return;   // a question is open: it takes the keys
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    if (ctrl && key === "enter") {   // works while typing a prompt, as in ComfyUI
      e.preventDefault();
      editor.queuePanel.queueBatch();
      return;
    }
    if (ctrl && key === "s") { e.preventDefault(); editor.files.save(); return; }
    if (ctrl && key === "o") { e.preventDefault(); editor.files.choose(); return; }
    if (typing(e.target) || !document.body.classList.contains("ready")) return;
    const actions = {
      z: () => (e.shiftKey ? editor.redoStep() : editor.undoStep()),
      y: () => editor.redoStep(),
      c: () => editor.copy(),
      v: () => editor.paste(),
      d: () => editor.duplicate(),
      a: () => editor.view.select([...editor.graph.nodes.keys()]),
      b: () => editor.setMode(MODE_BYPASSED),
      m: () => editor.setMode(MODE_MUTED),
    };
    if (ctrl && actions[key]) {
      e.preventDefault();
      actions[key]();
    } else if (!ctrl && (e.key === "Delete" || e.key === "Backspace")) {
      e.preventDefault();
      editor.deleteSelected();
    } else if (!ctrl && e.key === ".") {
      editor.view.fit(editor.view.selection.size ? editor.view.selection : null);
    }
  });
}
