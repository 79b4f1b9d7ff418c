/**
 * The searchable node palette (double-click on the canvas): type to filter node types by name,
 * class or category, arrows to choose, Enter to add. Opened from a dragged link, it offers
 * only the types that can take (or give) that link's type.
 */

import { typesCompatible } from "./nodedefs.js";

export class Palette {
  constructor(defs, onChoose) {
    this.defs = defs;
    this.onChoose = onChoose;
    this.root = document.createElement("div");
    this.root.className = "palette";
    this.root.hidden = true;
    this.input = Object.assign(document.createElement("input"), { type: "search", className: "palette-search",
      placeholder: "Search nodes…", spellcheck: false });
    this.input.setAttribute("aria-label", "Search nodes");
    this.list = Object.assign(document.createElement("div"), { className: "palette-list" });
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
    this.root.hidden = false;
    const width = 360;
    this.root.style.left = `${Math.max(4, Math.min(client.x, window.innerWidth - width - 4))}px`;
    this.root.style.top = `${Math.max(4, Math.min(client.y, window.innerHeight - 420))}px`;
    this.input.value = "";
    this.filter();
    this.input.focus();
  }

  close() { this.root.hidden = true; }

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
    const words = this.input.value.toLowerCase().split(/\s+/).filter(Boolean);
    const matches = this.candidates().filter((def) => {
      const text = `${def.displayName} ${def.type} ${def.category}`.toLowerCase();
      return words.every((w) => text.includes(w));
    }).slice(0, 200);
    this.list.replaceChildren(...matches.map((def, i) => {
      const item = document.createElement("div");
      item.className = "palette-item" + (i === 0 ? " active" : "");
      item.dataset.type = def.type;
      item.title = def.description;
      item.append(Object.assign(document.createElement("span"), { className: "palette-name", textContent: def.displayName }),
        Object.assign(document.createElement("span"), { className: "palette-category", textContent: def.category }));
      item.addEventListener("pointerdown", (e) => { e.preventDefault(); this.choose(def.type); });
      return item;
    }));
    if (!matches.length) this.list.append(Object.assign(document.createElement("div"), { className: "palette-empty", textContent: "No node matches" }));
  }

  key(e) {
    const items = [...this.list.querySelectorAll(".palette-item")];
    const index = items.findIndex((i) => i.classList.contains("active"));
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const next = Math.max(0, Math.min(items.length - 1, index + (e.key === "ArrowDown" ? 1 : -1)));
      items[index]?.classList.remove("active");
      items[next]?.classList.add("active");
      items[next]?.scrollIntoView({ block: "nearest" });
    } else if (e.key === "Enter") {
      e.preventDefault();
      if (items[index]) this.choose(items[index].dataset.type);
    } else if (e.key === "Escape") {
      this.close();
    }
  }

  choose(type) {
    this.close();
    this.onChoose(type, this.world, this.link);
  }
}
