/**
 * Work kept in the browser (localStorage) so a reload loses nothing: the open workflow and its
 * name, saved shortly after every change and when the page is hidden.
 */

const KEY = "sdgraph.editor.workflow";
const SAVE_DELAY_MS = 250;

export function loadSaved(storage = window.localStorage) {
  try {
    const saved = JSON.parse(storage.getItem(KEY));
    return saved && typeof saved === "object" && saved.workflow ? saved : null;
  } catch {
    return null;
  }
}

export class AutoSave {
  /** `current()` returns `{name, workflow}` to store. */
  constructor(current, storage = window.localStorage) {
    this.current = current;
    this.storage = storage;
    this.timer = null;
    this.failed = false;
    window.addEventListener("pagehide", () => this.flush());
    document.addEventListener("visibilitychange", () => { if (document.hidden) this.flush(); });
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), SAVE_DELAY_MS);
  }

  /** Write now; returns false when the browser refused (storage full or disabled). */
  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    try {
      this.storage.setItem(KEY, JSON.stringify(this.current()));
      this.failed = false;
      return true;
    } catch {
      this.failed = true;
      return false;
    }
  }
}
