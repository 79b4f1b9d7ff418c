/**
 * New nodes take their size defaults from the graph's checkpoint: an Empty Latent added to a graph
 * that loads the 64 px demo model is 64×64, for an SDXL checkpoint 1024×1024 (told by its name);
 * otherwise, and for the built-in tiny test models, the node's own default (512, SD1.x's size) stays.
 */

/** The native image size of a checkpoint, from its name; null when the name says nothing. */
export function nativeSize(checkpoint) {
  const name = String(checkpoint || "").toLowerCase();
  if (name.startsWith("demo-shapes")) return 64;        // the built-in demo model (README): 64×64 only
  if (name.startsWith("tiny-")) return null;             // the random-weight test models take any size
  if (/sdxl|sd_xl|xl([^a-z]|$)/.test(name)) return 1024;
  return null;
}

/** The checkpoint the graph loads: the first node with a `ckpt_name` widget that is not muted. */
export function currentCheckpoint(graph) {
  for (const node of graph.nodes.values()) {
    if (!graph.widget(node, "ckpt_name") || node.mode === 2) continue;
    return graph.widgetValue(node, "ckpt_name");
  }
  return null;
}

/** Give a newly added latent-making node (width and height widgets, latent category) the model's size. */
export function applyModelDefaults(graph, node) {
  const def = graph.def(node);
  const size = nativeSize(currentCheckpoint(graph));
  if (!def || !size || !String(def.category || "").startsWith("latent")) return;
  if (!graph.widget(node, "width") || !graph.widget(node, "height")) return;
  graph.setWidgetValue(node, "width", size, { silent: true });
  graph.setWidgetValue(node, "height", size, { silent: true });
}
