/**
 * Work kept in the browser (localStorage) so a reload loses nothing: the open tabs, each with its
 * name, workflow and last saved state, saved shortly after every change and when the page hides.
 *
 * Each browser tab writes under its own session key (its id lives in sessionStorage, which a
 * reload keeps and a new browser tab does not), so two browser tabs never overwrite each other.
 * A new browser tab starts from a copy of the most recently saved session; a Web Lock held for
 * the page's life tells a duplicated tab (whose sessionStorage is a copy) to fork a session too.
 */

const SESSION_ID_KEY = "sdgraph.editor.session";
const SESSION_PREFIX = "sdgraph.editor.session.";
const LEGACY_KEY = "sdgraph.editor.workflow";   // one workflow, as earlier versions kept it
const SAVE_DELAY_MS = 250;
const KEPT_SESSIONS = 20;

const newId = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`).replaceAll("-", "").slice(0, 16);

function readJson(storage, key) {
  try {
    const value = JSON.parse(storage.getItem(key));
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

/** Hold a Web Lock for the page's life; false when another page holds it (no Web Locks: true). */
function holdLock(name) {
  if (!navigator.locks?.request) return Promise.resolve(true);
  return new Promise((resolve) => {
    navigator.locks.request(name, { ifAvailable: true }, (lock) => {
      resolve(Boolean(lock));
      return lock ? new Promise(() => {}) : undefined;
    }).catch(() => resolve(true));
  });
}

const validState = (state) => (state && Array.isArray(state.tabs)
  && state.tabs.every((tab) => tab && typeof tab === "object" && tab.workflow) ? state : null);

export class SessionStore {
  constructor(storage = window.localStorage, session = window.sessionStorage) {
    this.storage = storage;
    this.session = session;
    this.id = null;
  }

  /** Claim this browser tab's session; returns its saved state `{active, tabs: [{name, workflow, saved}]}` or null. */
  async open() {
    const previous = this.session.getItem(SESSION_ID_KEY);
    const own = previous && validState(readJson(this.storage, SESSION_PREFIX + previous));
    this.id = previous && await holdLock(SESSION_PREFIX + previous) ? previous : null;
    if (!this.id) {
      this.id = newId();
      await holdLock(SESSION_PREFIX + this.id);
      this.session.setItem(SESSION_ID_KEY, this.id);
    }
    if (own) return own;
    return this.newest() || this.legacy();
  }

  /** The most recently saved session of this browser (another tab's, or one closed). */
  newest() {
    let best = null;
    for (const key of this.sessionKeys()) {
      const state = validState(readJson(this.storage, key));
      if (state && (!best || (state.updated || 0) > (best.updated || 0))) best = state;
    }
    return best;
  }

  legacy() {
    const saved = readJson(this.storage, LEGACY_KEY);
    return saved?.workflow ? { active: 0, tabs: [{ name: saved.name, workflow: saved.workflow, saved: null }] } : null;
  }

  sessionKeys() {
    const keys = [];
    for (let i = 0; i < this.storage.length; i++) {
      const key = this.storage.key(i);
      if (key?.startsWith(SESSION_PREFIX)) keys.push(key);
    }
    return keys;
  }

  /** Write this session; false when the browser refused (storage full or disabled). */
  save(state) {
    if (!this.id) return false;
    try {
      this.storage.setItem(SESSION_PREFIX + this.id, JSON.stringify({ ...state, updated: Date.now() }));
      this.prune();
      return true;
    } catch {
      return false;
    }
  }

  /** Forget the oldest sessions beyond KEPT_SESSIONS (tabs long closed). */
  prune() {
    const keys = this.sessionKeys();
    if (keys.length <= KEPT_SESSIONS) return;
    const age = (key) => readJson(this.storage, key)?.updated || 0;
    const sorted = keys.filter((key) => key !== SESSION_PREFIX + this.id).sort((a, b) => age(a) - age(b));
    for (const key of sorted.slice(0, keys.length - KEPT_SESSIONS)) this.storage.removeItem(key);
  }
}

// At most a second's wait for an idle moment; browsers without idle callbacks write at once.
const idleCallback = (run) => (window.requestIdleCallback ? window.requestIdleCallback(run, { timeout: 1000 }) : setTimeout(run, 0));
const cancelIdle = (handle) => (window.cancelIdleCallback ? window.cancelIdleCallback(handle) : clearTimeout(handle));

export class AutoSave {
  /** `current()` returns the state to store; `store` is a claimed SessionStore. */
  constructor(current, store) {
    this.current = current;
    this.store = store;
    this.timer = null;
    this.idle = null;
    this.failed = false;
    window.addEventListener("pagehide", () => this.flush());
    document.addEventListener("visibilitychange", () => { if (document.hidden) this.flush(); });
  }

  /**
   * Write shortly after the last change, when the page is idle: serialising a big session takes
   * milliseconds that an edit's frame or the next gesture should not wait for.
   */
  schedule() {
    this.cancel();
    this.timer = setTimeout(() => {
      this.timer = null;
      this.idle = idleCallback(() => { this.idle = null; this.flush(); });
    }, SAVE_DELAY_MS);
  }

  cancel() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.idle) cancelIdle(this.idle);
    this.idle = null;
  }

  /** Write now; returns false when the browser refused. */
  flush() {
    this.cancel();
    const state = this.current();
    if (!state) return true;
    this.failed = !this.store.save(state);
    return !this.failed;
  }
}
