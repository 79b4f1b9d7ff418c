/**
 * Groups (ComfyUI's `groups`: {title, bounding: [x, y, w, h], color, font_size, flags}): create one
 * around the selection or on the empty canvas, rename (double-click the title), recolour, resize
 * (drag the bottom-right corner) and delete, with or without the nodes inside. Moving a group by its
 * title moves its nodes too (pointer.js).
 */

import { showMenu } from "./menu.js";
import { editTitle } from "./title_editor.js";

/** ComfyUI's group colours (LGraphCanvas.node_colors' groupcolor), so files round-trip unchanged. */
export const GROUP_COLOURS = {
  red: "#A88", brown: "#b06634", green: "#8A8", blue: "#88A", pale_blue: "#3f789e", cyan: "#8AA",
  purple: "#a1309b", yellow: "#b58b2a", black: "#444",
};
const PADDING = 10;
const TITLE_SPACE = 34;         // the title bar's height (style.css: 20px text plus padding)
const MIN_SIZE = [140, 80];
const NEW_GROUP_SIZE = [400, 300];

/** The smallest box holding `boxes` ([x, y, w, h] each) with room for a group's title above them. */
export function boundingAround(boxes) {
  const x0 = Math.min(...boxes.map((b) => b[0])) - PADDING;
  const y0 = Math.min(...boxes.map((b) => b[1])) - PADDING - TITLE_SPACE;
  const x1 = Math.max(...boxes.map((b) => b[0] + b[2])) + PADDING;
  const y1 = Math.max(...boxes.map((b) => b[1] + b[3])) + PADDING;
  return [Math.round(x0), Math.round(y0), Math.round(x1 - x0), Math.round(y1 - y0)];
}

export class GroupEditor {
  /** `editor`: the Editor of main.js (graph, view, pointer, selected(), toast()). */
  constructor(editor) {
    this.editor = editor;
    this.graph = editor.graph;
    this.view = editor.view;
    const root = this.view.root;
    root.addEventListener("pointerdown", (e) => this.maybeResize(e), true);
    root.addEventListener("dblclick", (e) => this.maybeRename(e), true);
    root.addEventListener("contextmenu", (e) => this.maybeMenu(e), true);
    root.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "g" && !e.target.closest?.("input, textarea, select")) {
        e.preventDefault();
        this.create(this.view.toWorld(editor.lastPointer?.x ?? 0, editor.lastPointer?.y ?? 0));
      }
    });
  }

  groupIndexAt(clientX, clientY, selector = ".group-title") {
    const hit = document.elementFromPoint(clientX, clientY)?.closest?.(selector);
    const groupEl = hit?.closest(".group");
    return groupEl ? Number(groupEl.dataset.group) : null;
  }

  changed() { this.graph.changed("structure", {}); }

  /** A new group around the selected nodes, or of a default size at `world` when none is selected. */
  create(world = null, title = "Group") {
    const ids = this.editor.selected();
    const bounding = ids.length
      ? boundingAround(ids.map((id) => this.view.nodeBox(this.graph.nodes.get(id))))
      : [Math.round(world?.[0] ?? 0), Math.round(world?.[1] ?? 0), ...NEW_GROUP_SIZE];
    this.graph.groups.push({ title, bounding, color: GROUP_COLOURS.pale_blue, font_size: 24, flags: {} });
    this.changed();
    return this.graph.groups.length - 1;
  }

  setTitle(index, title) {
    const group = this.graph.groups[index];
    if (!group) return;
    group.title = title || "Group";
    this.changed();
  }

  setColour(index, colour) {
    const group = this.graph.groups[index];
    if (!group) return;
    if (colour) group.color = colour;
    else delete group.color;
    this.changed();
  }

  setBounding(index, bounding) {
    const group = this.graph.groups[index];
    if (!group) return;
    group.bounding = [bounding[0], bounding[1], Math.max(MIN_SIZE[0], bounding[2]), Math.max(MIN_SIZE[1], bounding[3])];
    this.changed();
  }

  /** Delete a group; with `withNodes`, the nodes wholly inside it go too (one undo step). */
  remove(index, { withNodes = false } = {}) {
    if (!this.graph.groups[index]) return;
    this.graph.batch(() => {
      if (withNodes) this.graph.removeNodes(this.editor.pointer.nodesInGroup(index));
      this.graph.groups.splice(index, 1);
      this.changed();
    });
  }

  /** Drag a group's bottom-right corner to resize it (its nodes stay where they are). */
  maybeResize(e) {
    const handle = e.target.closest?.(".group-resize");
    if (!handle || e.button !== 0) return;
    e.stopPropagation();
    e.preventDefault();
    const index = Number(handle.closest(".group").dataset.group);
    const group = this.graph.groups[index];
    const start = { x: e.clientX, y: e.clientY, w: group.bounding[2], h: group.bounding[3] };
    const scale = this.view.scale;
    const root = this.view.root;       // not the handle: redrawing the groups replaces it
    root.setPointerCapture(e.pointerId);
    const move = (m) => {
      group.bounding = [group.bounding[0], group.bounding[1],
        Math.max(MIN_SIZE[0], Math.round(start.w + (m.clientX - start.x) / scale)),
        Math.max(MIN_SIZE[1], Math.round(start.h + (m.clientY - start.y) / scale))];
      this.view.renderGroups();
    };
    const up = () => {
      root.removeEventListener("pointermove", move);
      root.removeEventListener("pointerup", up);
      this.changed();
    };
    root.addEventListener("pointermove", move);
    root.addEventListener("pointerup", up);
  }

  maybeRename(e) {
    const index = this.groupIndexAt(e.clientX, e.clientY);
    if (index == null) return;
    e.stopPropagation();
    this.rename(index);
  }

  /** Edit a group's title in place (Enter or leaving the field keeps it, Escape does not). */
  rename(index) {
    const titleEl = this.view.groupLayer.querySelector(`.group[data-group="${index}"] .group-title`);
    if (!titleEl) return;
    editTitle({ value: this.graph.groups[index].title || "Group", label: "Group title",
      className: "title-editor group-title-editor", place: (input) => titleEl.replaceChildren(input),
      done: (text) => (text === null ? this.view.renderGroups() : this.setTitle(index, text)) });
  }

  maybeMenu(e) {
    const index = this.groupIndexAt(e.clientX, e.clientY);
    if (index == null) return;
    e.preventDefault();
    e.stopPropagation();
    const inside = this.editor.pointer.nodesInGroup(index).length;
    showMenu([
      { label: "Rename group…", hint: "double-click title", action: () => this.rename(index) },
      { label: "Colour", items: [
        ...Object.entries(GROUP_COLOURS).map(([name, colour]) => ({ label: name.replace("_", " "),
          checked: this.graph.groups[index].color === colour, action: () => this.setColour(index, colour) })),
        { label: "no colour", action: () => this.setColour(index, null) },
      ] },
      { label: "Fit group to its nodes", disabled: !inside, action: () => {
        const ids = this.editor.pointer.nodesInGroup(index);
        this.setBounding(index, boundingAround(ids.map((id) => this.view.nodeBox(this.graph.nodes.get(id)))));
      } },
      { separator: true },
      { label: "Delete group", action: () => this.remove(index) },
      { label: `Delete group and its ${inside} node(s)`, disabled: !inside, action: () => this.remove(index, { withNodes: true }) },
    ], e.clientX, e.clientY);
  }

  /** Items the canvas and node menus offer. */
  menuItems(world) {
    const count = this.editor.selected().length;
    return [{ label: count ? `Group the ${count} selected node(s)` : "Add group", hint: "Ctrl+G",
      action: () => this.create(world) }];
  }
}
