/**
 * Copy and paste of nodes with the links between them. The clipboard lives in localStorage, so
 * nodes copied in one tab paste into another.
 */

const KEY = "sdgraph.editor.clipboard";

export function copyNodes(graph, ids) {
  const chosen = new Set(ids);
  if (!chosen.size) return false;
  const nodes = [...chosen].map((id) => graph.nodes.get(id)).filter(Boolean);
  const links = [...graph.links.values()].filter((l) => chosen.has(l.origin_id) && chosen.has(l.target_id))
    .map((l) => [l.origin_id, l.origin_slot, l.target_id, l.target_slot]);
  try {
    localStorage.setItem(KEY, JSON.stringify({ nodes, links }));
  } catch {
    return false;
  }
  return true;
}

export function hasClipboard() {
  return Boolean(localStorage.getItem(KEY));
}

/** Paste the clipboard with its top-left corner at `at`; returns the new node ids. */
export function pasteNodes(graph, at) {
  let data;
  try { data = JSON.parse(localStorage.getItem(KEY)); } catch { return []; }
  if (!data?.nodes?.length) return [];
  const x0 = Math.min(...data.nodes.map((n) => n.pos[0]));
  const y0 = Math.min(...data.nodes.map((n) => n.pos[1]));
  const ids = new Map();
  graph.batch(() => {
    for (const raw of data.nodes) {
      const node = graph.insert(raw, [Math.round(at[0] + raw.pos[0] - x0), Math.round(at[1] + raw.pos[1] - y0)]);
      ids.set(raw.id, node.id);
    }
    for (const [origin, originSlot, target, targetSlot] of data.links) {
      graph.connect(ids.get(origin), originSlot, ids.get(target), targetSlot);
    }
  });
  return [...ids.values()];
}
