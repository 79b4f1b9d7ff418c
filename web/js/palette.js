/**
 * The searchable node palette (double-click on the canvas): type to find node types by name,
 * class or category, ranked (exact names, then names that start so, ...; testing and deprecated
 * nodes last); with nothing typed, a tree of categories. Arrows to choose, Enter to add (or to
 * open a category). Opened from a dragged link, it offers only the types that connect to it.
 */

import { typesCompatible } from "./nodedefs.js";

const MAX_RESULTS = 200;

/** Nodes ComfyUI files under `_for_testing`, and deprecated ones: offered, but after the rest. */
export function isBuried(def) {
  return Boolean(def.deprecated) || def.category.split("/").includes("_for_testing");
}

/** How well a node matches a query, lower is better; null when it does not match. */
export function matchRank(def, query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return 0;
  const names = [def.displayName.toLowerCase(), def.type.toLowerCase()];
  if (!words.every((w) => `${names.join(" ")} ${def.category.toLowerCase()}`.includes(w))) return null;
  const whole = words.join(" ");
  const nameWords = names.flatMap((name) => name.split(/[^a-z0-9]+/).filter(Boolean));
  let rank = 4;                                                              // found in the category only
  if (names.includes(whole)) rank = 0;                                       // the exact name
  else if (names.some((name) => name.startsWith(whole))) rank = 1;           // the name starts so
  else if (words.every((w) => nameWords.some((n) => n.startsWith(w)))) rank = 2;   // words of the name start so
  else if (words.every((w) => names.some((name) => name.includes(w)))) rank = 3;  // inside the name
  return rank + (isBuried(def) ? 10 : 0);
}

/** The matching nodes, best first (by name among equals). */
export function rankNodes(defs, query) {
  return defs.map((def) => [def, matchRank(def, query)]).filter(([, rank]) => rank !== null)
    .sort(([a, ra], [b, rb]) => ra - rb || a.displayName.localeCompare(b.displayName))
    .map(([def]) => def);
}

/** The category tree: {folders: Map(name → tree), nodes: [def]}; buried nodes last in each folder. */
export function categoryTree(defs) {
  const root = { folders: new Map(), nodes: [] };
  for (const def of defs) {
    let folder = root;
    for (const part of (def.category || "uncategorised").split("/").filter(Boolean)) {
      if (!folder.folders.has(part)) folder.folders.set(part, { folders: new Map(), nodes: [] });
      folder = folder.folders.get(part);
    }
    folder.nodes.push(def);
  }
  const tidy = (folder) => {
    folder.folders = new Map([...folder.folders].sort(([a], [b]) => (a.startsWith("_") - b.startsWith("_")) || a.localeCompare(b)));
    folder.nodes.sort((a, b) => isBuried(a) - isBuried(b) || a.displayName.localeCompare(b.displayName));
    for (const child of folder.folders.values()) tidy(child);
  };
  tidy(root);
  return root;
}

export class Palette {
  constructor(defs, onChoose) {
    this.defs = defs;
    this.onChoose = onChoose;
    this.openFolders = new Set();   // category paths expanded in the tree
    this.root = document.createElement("div");
    this.root.className = "palette";
    this.root.hidden = true;
    this.input = Object.assign(document.createElement("input"), { type: "search", className: "palette-search",
      placeholder: "Search nodes…", spellcheck: false });
    this.input.setAttribute("aria-label", "Search nodes");
    this.list = Object.assign(document.createElement("div"), { className: "palette-list", id: "palette-list" });
    // A combobox over a listbox: focus stays in the search field, the active option is announced.
    this.list.setAttribute("role", "listbox");
    this.list.setAttribute("aria-label", "Node types");
    for (const [name, value] of [["role", "combobox"], ["aria-controls", "palette-list"], ["aria-expanded", "false"], ["aria-autocomplete", "list"]]) {
      this.input.setAttribute(name, value);
    }
    this.root.append(this.input, this.list);
    document.body.append(this.root);
    this.input.addEventListener("input", () => this.filter());
    this.input.addEventListener("keydown", (e) => this.key(e));
    document.addEventListener("pointerdown", (e) => { if (!this.root.hidden && !this.root.contains(e.target)) this.close(); }, true);
  }

  /** Open at client (x, y); `link` ({from, type}) restricts the list to types that connect to it. */
  open(world, client, link = null) {
    this.world = world;
    this.link = link;
    this.opener = document.activeElement;   // Escape gives the focus back to it
    this.root.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    const width = 360;
    this.root.style.left = `${Math.max(4, Math.min(client.x, window.innerWidth - width - 4))}px`;
    this.root.style.top = `${Math.max(4, Math.min(client.y, window.innerHeight - 420))}px`;
    this.input.value = "";
    this.filter();
    this.input.focus();
  }

  close() {
    this.root.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
  }

  /** Make a row the active option (aria-selected, announced through aria-activedescendant). */
  activate(row) {
    for (const old of this.list.querySelectorAll("[aria-selected=true]")) {
      old.classList.remove("active");
      old.setAttribute("aria-selected", "false");
    }
    if (!row) { this.input.removeAttribute("aria-activedescendant"); return; }
    row.classList.add("active");
    row.setAttribute("aria-selected", "true");
    this.input.setAttribute("aria-activedescendant", row.id);
    row.scrollIntoView({ block: "nearest" });
  }

  candidates() {
    let defs = this.defs.list();
    if (this.link) {
      const { type, from } = this.link;
      defs = defs.filter((def) => (from.dir === "out"
        ? def.inputs.some((i) => typesCompatible(type, i.type)) : def.outputs.some((o) => typesCompatible(o.type, type))));
    }
    return defs;
  }

  filter() {
    const query = this.input.value.trim();
    const rows = query ? rankNodes(this.candidates(), query).slice(0, MAX_RESULTS).map((def) => this.itemRow(def, 0))
      : this.treeRows(categoryTree(this.candidates()), "", 0);
    rows.forEach((row, index) => Object.assign(row, { id: `palette-option-${index}` }));
    this.list.replaceChildren(...rows);
    this.activate(rows[0]);
    if (!rows.length) this.list.append(Object.assign(document.createElement("div"), { className: "palette-empty", textContent: "No node matches" }));
  }

  itemRow(def, depth) {
    const item = document.createElement("div");
    item.className = `palette-item${isBuried(def) ? " buried" : ""}`;
    item.setAttribute("role", "option");
    item.setAttribute("aria-selected", "false");
    item.dataset.type = def.type;
    item.title = def.description || def.type;
    if (depth) item.style.paddingLeft = `${10 + depth * 14}px`;
    item.append(Object.assign(document.createElement("span"), { className: "palette-name", textContent: def.displayName }),
      Object.assign(document.createElement("span"), { className: "palette-category",
        textContent: depth ? (def.deprecated ? "deprecated" : "") : def.category }));
    item.addEventListener("pointerdown", (e) => { e.preventDefault(); this.choose(def.type); });
    return item;
  }

  /** The rows of a category folder: its sub-folders (opened ones expanded), then its nodes. */
  treeRows(folder, path, depth) {
    const rows = [];
    for (const [name, child] of folder.folders) {
      const childPath = path ? `${path}/${name}` : name;
      const open = this.openFolders.has(childPath);
      const row = Object.assign(document.createElement("div"), { className: `palette-folder${open ? " open" : ""}`, textContent: name });
      row.dataset.folder = childPath;
      row.setAttribute("role", "option");
      row.setAttribute("aria-selected", "false");
      row.setAttribute("aria-expanded", String(open));
      row.style.paddingLeft = `${10 + depth * 14}px`;
      row.addEventListener("pointerdown", (e) => { e.preventDefault(); this.toggleFolder(childPath); });
      rows.push(row);
      if (open) rows.push(...this.treeRows(child, childPath, depth + 1));
    }
    rows.push(...folder.nodes.map((def) => this.itemRow(def, depth)));
    return rows;
  }

  toggleFolder(path) {
    if (this.openFolders.has(path)) this.openFolders.delete(path);
    else this.openFolders.add(path);
    this.filter();
    const row = [...this.list.querySelectorAll(".palette-folder")].find((r) => r.dataset.folder === path);
    if (row) this.activate(row);
    this.input.focus();
  }

  key(e) {
    const items = [...this.list.querySelectorAll(".palette-item, .palette-folder")];
    const index = items.findIndex((i) => i.classList.contains("active"));
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const next = Math.max(0, Math.min(items.length - 1, index + (e.key === "ArrowDown" ? 1 : -1)));
      if (items[next]) this.activate(items[next]);
    } else if (e.key === "Enter") {
      e.preventDefault();
      const item = items[index];
      if (item?.dataset.folder) this.toggleFolder(item.dataset.folder);
      else if (item) this.choose(item.dataset.type);
    } else if (e.key === "Escape") {
      this.close();
      if (this.opener?.isConnected) this.opener.focus({ preventScroll: true });
    }
  }

  choose(type) {
    this.close();
    this.onChoose(type, this.world, this.link);
  }
}
