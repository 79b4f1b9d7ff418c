/**
 * Reroutes are typed by what flows through them, as in ComfyUI: after every edit each Reroute's
 * sockets take the type of the output upstream of it (else of the inputs it feeds), so the graph's
 * usual refusal turns down a mismatched link through a reroute as it does a direct one.
 */

const ANY = "*";

/** The type flowing through a Reroute: upstream first, then downstream; "*" when nothing decides it. */
export function rerouteType(graph, node, seen = new Set()) {
  return upstreamType(graph, node, new Set(seen)) ?? downstreamType(graph, node, new Set(seen)) ?? ANY;
}

function upstreamType(graph, node, seen) {
  if (seen.has(node.id)) return null;
  seen.add(node.id);
  const link = graph.links.get(node.inputs[0]?.link);
  const origin = link && graph.nodes.get(link.origin_id);
  if (!origin) return null;
  if (origin.type === "Reroute") return upstreamType(graph, origin, seen);
  const type = origin.outputs[link.origin_slot]?.type;
  return type && type !== ANY ? type : null;
}

function downstreamType(graph, node, seen) {
  if (seen.has(node.id)) return null;
  seen.add(node.id);
  for (const linkId of node.outputs[0]?.links || []) {
    const link = graph.links.get(linkId);
    const target = link && graph.nodes.get(link.target_id);
    if (!target) continue;
    const type = target.type === "Reroute" ? downstreamType(graph, target, seen) : target.inputs[link.target_slot]?.type;
    if (type && type !== ANY) return type;
  }
  return null;
}

/** Give every Reroute (and the links through it) its flowing type; returns the ids of those that changed. */
export function typeReroutes(graph) {
  const changed = [];
  for (const node of graph.nodes.values()) {
    if (node.type !== "Reroute" || !node.inputs[0] || !node.outputs[0]) continue;
    const type = rerouteType(graph, node);
    if (node.inputs[0].type !== type || node.outputs[0].type !== type) {
      node.inputs[0].type = type;
      node.outputs[0].type = type;
      changed.push(node.id);
    }
    for (const linkId of [node.inputs[0].link, ...(node.outputs[0].links || [])]) {
      const link = graph.links.get(linkId);
      if (link && type !== ANY) link.type = type;
    }
  }
  return changed;
}

/** Keep reroutes typed as the graph changes, before the change is drawn or recorded for undo. */
export function installRerouteTyping(graph) {
  graph.addEventListener("settle", ({ detail }) => {
    if (detail.kind === "structure" || detail.kind === "load") detail.retyped = typeReroutes(graph);
  });
}
