/**
 * Undo/redo as a stack of document snapshots: the workflow's name and its JSON text without the
 * viewport (panning and zooming are not steps). Only document state is in a snapshot, never what
 * the view measures or shows (drawn sizes, images, errors), so a run never breaks the history.
 * Simple and exact: restoring a snapshot is loading a workflow.
 */

export const UNDO_LIMIT = 100;

export class UndoStack {
  constructor(limit = UNDO_LIMIT) {
    this.limit = limit;
    this.reset(null);
  }

  reset(snapshot) {
    this.past = [];
    this.future = [];
    this.current = snapshot;
  }

  /** Note the state after an edit; an unchanged state records nothing. */
  record(snapshot) {
    if (snapshot === this.current) return false;
    if (this.current !== null) this.past.push(this.current);
    if (this.past.length > this.limit) this.past.shift();
    this.current = snapshot;
    this.future = [];
    return true;
  }

  undo() {
    if (!this.past.length) return null;
    this.future.push(this.current);
    this.current = this.past.pop();
    return this.current;
  }

  redo() {
    if (!this.future.length) return null;
    this.past.push(this.current);
    this.current = this.future.pop();
    return this.current;
  }
}

/** The snapshot of a named UI-format workflow: everything but the viewport. */
export function snapshotOf(workflow, name = "Untitled") {
  const { extra = {}, ...rest } = workflow;
  const { ds, ...extraRest } = extra;
  return JSON.stringify({ name, workflow: { ...rest, extra: extraRest } });
}

/** `{name, workflow}` back from a snapshot. */
export function parseSnapshot(snapshot) {
  return JSON.parse(snapshot);
}
