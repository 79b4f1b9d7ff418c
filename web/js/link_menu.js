/**
 * Clicking a link offers to delete it or to insert a Reroute on it (which keeps the link's type,
 * see reroutes.js). Links are SVG paths in the canvas's link layer carrying `data-link-id`.
 */

import { showMenu } from "./menu.js";

/** Put a Reroute on a link at `world`: origin → reroute → target, as one edit; returns the reroute. */
export function insertReroute(graph, linkId, world) {
  const link = graph.links.get(linkId);
  if (!link) return null;
  const { origin_id: originId, origin_slot: originSlot, target_id: targetId, target_slot: targetSlot } = link;
  return graph.batch(() => {
    const reroute = graph.addNode("Reroute", [world[0] - 35, world[1]]);
    graph.removeLink(linkId);
    graph.connect(originId, originSlot, reroute.id, 0);
    graph.connect(reroute.id, 0, targetId, targetSlot);
    return reroute;
  });
}

export function deleteLink(graph, linkId) {
  const link = graph.links.get(linkId);
  if (link) graph.disconnectInput(link.target_id, link.target_slot);
}

export function installLinkMenu(editor) {
  const { graph, view } = editor;
  view.root.addEventListener("pointerdown", (e) => {
    const path = e.target.closest?.("path.link[data-link-id]");
    if (!path || e.button !== 0) return;
    e.stopPropagation();
    e.preventDefault();
    const linkId = Number(path.dataset.linkId);
    const world = view.toWorld(e.clientX, e.clientY);
    const link = graph.links.get(linkId);
    const menu = showMenu([
      { label: "Delete link", action: () => deleteLink(graph, linkId) },
      { label: "Insert reroute", action: () => insertReroute(graph, linkId, world) },
    ], e.clientX, e.clientY);
    menu.classList.add("link-menu");
    menu.dataset.linkType = link?.type ?? "";
  }, true);
}
