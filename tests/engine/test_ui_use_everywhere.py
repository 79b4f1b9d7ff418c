"""Use Everywhere at UI → API conversion: each rule of the pack's browser code, on small UI graphs.

Each expected link is the one the pack's `find_best_match` makes for that input (see the comments).
"""

import pytest

from engine.registry import NodeRegistry
from engine.ui_format import ui_to_api
from engine.ui_use_everywhere import resolve_use_everywhere
from engine.workflow import LinkRef
from tests.engine.toy_nodes import comfy_toy_nodes

CONDITIONING, CLIP, MODEL, VAE, LATENT, IMAGE, INT = "CONDITIONING", "CLIP", "MODEL", "VAE", "LATENT", "IMAGE", "INT"


@pytest.fixture(scope="module")
def registry():
    return NodeRegistry(comfy_toy_nodes())


class Graph:
    """A UI-format workflow built node by node; `link` wires an output to an input by name."""

    def __init__(self):
        self.nodes, self.links, self.groups = {}, [], []

    def add(self, uid, type_, inputs=(), outputs=(), widgets=None, pos=(0, 0), **extra):
        self.nodes[uid] = {"id": uid, "type": type_, "mode": 0, "pos": list(pos), "size": [100, 60],
                           "inputs": [{"name": n, "type": t, "link": None, **({"widget": {"name": n}} if w else {})}
                                      for n, t, w in ((i + (False,))[:3] for i in inputs)],
                           "outputs": [{"name": t, "type": t, "links": []} for t in outputs],
                           "widgets_values": widgets if widgets is not None else [], "properties": {}, **extra}
        return self

    def link(self, origin, slot, target, name):
        link_id = len(self.links) + 1
        target_node = self.nodes[target]
        index = next(i for i, inp in enumerate(target_node["inputs"]) if inp["name"] == name)
        link_type = target_node["inputs"][index]["type"]
        if link_type == "*":
            link_type = self.nodes[origin]["outputs"][slot]["type"]
        self.links.append([link_id, origin, slot, target, index, link_type])
        target_node["inputs"][index]["link"] = link_id
        return self

    def ui(self):
        return {"last_node_id": max(self.nodes), "last_link_id": len(self.links), "nodes": list(self.nodes.values()),
                "links": self.links, "groups": self.groups, "version": 0.4}


def sd_graph():
    """Loader, two prompts, sampler, decode, save: every model/clip/vae/prompt input left unconnected."""
    g = Graph()
    g.add(1, "CheckpointLoaderSimple", outputs=[MODEL, CLIP, VAE], widgets=["model.safetensors"])
    g.add(2, "CLIPTextEncode", inputs=[("clip", CLIP)], outputs=[CONDITIONING], widgets=["a cat"], title="Positive")
    g.add(3, "CLIPTextEncode", inputs=[("clip", CLIP)], outputs=[CONDITIONING], widgets=["blurry"], title="Negative")
    g.add(4, "KSampler", inputs=[("model", MODEL), ("positive", CONDITIONING), ("negative", CONDITIONING),
                                 ("latent_image", LATENT)], outputs=[LATENT],
          widgets=[5, "fixed", 20, 8.0, "euler", "normal", 1.0])
    g.add(5, "EmptyLatentImage", outputs=[LATENT], widgets=[512, 512, 1])
    g.add(6, "VAEDecode", inputs=[("samples", LATENT), ("vae", VAE)], outputs=[IMAGE])
    g.add(7, "SaveImage", inputs=[("images", IMAGE)], widgets=["out"])
    return g.link(5, 0, 4, "latent_image").link(4, 0, 6, "samples").link(6, 0, 7, "images")


def source(workflow, node, name):
    value = workflow.nodes[str(node)].inputs.get(name)
    return (value.node_id, value.slot) if isinstance(value, LinkRef) else value


def test_anything_everywhere3_and_prompts_everywhere_fill_the_sd_graph(registry):
    g = sd_graph()
    g.add(10, "Anything Everywhere3", inputs=[("anything", "*"), ("anything2", "*"), ("anything3", "*")])
    g.link(1, 0, 10, "anything").link(1, 1, 10, "anything2").link(1, 2, 10, "anything3")
    g.add(11, "Prompts Everywhere", inputs=[("+ve", CONDITIONING), ("-ve", CONDITIONING)])
    g.link(2, 0, 11, "+ve").link(3, 0, 11, "-ve")
    wf = ui_to_api(g.ui(), registry)
    assert "10" not in wf.nodes and "11" not in wf.nodes            # UE nodes are virtual
    assert source(wf, 4, "model") == ("1", 0)
    assert source(wf, 2, "clip") == source(wf, 3, "clip") == ("1", 1)
    assert source(wf, 6, "vae") == ("1", 2)
    assert source(wf, 4, "positive") == ("2", 0)                    # input name matches (_|\b)pos(itive|_|\b)
    assert source(wf, 4, "negative") == ("3", 0)


def test_seed_everywhere_feeds_converted_seed_widgets_its_value(registry):
    g = sd_graph()
    g.nodes[4]["inputs"].append({"name": "seed", "type": INT, "link": None, "widget": {"name": "seed"}})
    g.add(12, "Seed Everywhere", outputs=[INT], widgets=[123456, "fixed"])
    wf = ui_to_api(g.ui(), registry)
    assert wf.nodes["4"].inputs["seed"] == 123456
    assert "12" not in wf.nodes


def test_a_regex_broadcast_outranks_a_plain_one_where_its_title_regex_matches():
    g = sd_graph()
    g.add(8, "CheckpointLoaderSimple", outputs=[MODEL, CLIP, VAE], widgets=["other.safetensors"])
    g.add(10, "Anything Everywhere", inputs=[("anything", "*")]).link(1, 1, 10, "anything")        # priority 2
    g.add(11, "Anything Everywhere?", inputs=[("anything", "*")], widgets=["^Neg", ".*", ".*"])     # priority 10
    g.link(8, 1, 11, "anything")
    added = links_by_target(resolve_use_everywhere(g.ui()))
    assert added[(2, 0)] == (1, 1)      # "Positive" does not match ^Neg: only the plain broadcast
    assert added[(3, 0)] == (8, 1)      # "Negative" matches: the regex broadcast wins


def test_input_regex_picks_inputs_by_name():
    g = sd_graph()
    g.add(11, "Anything Everywhere?", inputs=[("anything", "*")], widgets=[".*", "neg", ".*"])
    g.link(3, 0, 11, "anything")
    added = links_by_target(resolve_use_everywhere(g.ui()))
    assert added.get((4, 2)) == (3, 0) and (4, 1) not in added


def test_a_tie_at_the_top_leaves_the_input_unconnected():
    g = sd_graph()
    g.add(8, "CheckpointLoaderSimple", outputs=[MODEL, CLIP, VAE], widgets=["other.safetensors"])
    g.add(10, "Anything Everywhere", inputs=[("anything", "*")]).link(1, 2, 10, "anything")
    g.add(11, "Anything Everywhere", inputs=[("anything", "*")]).link(8, 2, 11, "anything")
    assert (6, 1) not in links_by_target(resolve_use_everywhere(g.ui()))


def test_group_restriction_and_group_regex():
    g = sd_graph()
    g.nodes[2]["pos"] = [1000, 1000]                                 # Positive sits in group "Prompts"
    g.groups.append({"title": "Prompts", "bounding": [950, 900, 400, 300]})
    g.add(8, "CheckpointLoaderSimple", outputs=[MODEL, CLIP, VAE], widgets=["other.safetensors"])
    g.add(10, "Anything Everywhere", inputs=[("anything", "*")]).link(1, 1, 10, "anything")        # 2
    g.add(11, "Anything Everywhere", inputs=[("anything", "*")], pos=(1100, 1100))                 # 2.1 in group
    g.nodes[11]["properties"]["group_restricted"] = 1
    g.link(8, 1, 11, "anything")
    added = links_by_target(resolve_use_everywhere(g.ui()))
    assert added[(2, 0)] == (8, 1) and added[(3, 0)] == (1, 1)

    g.nodes[11]["properties"]["group_restricted"] = 2                # not in my group: only Negative
    added = links_by_target(resolve_use_everywhere(g.ui()))
    assert added[(2, 0)] == (1, 1) and added[(3, 0)] == (8, 1)

    g.nodes[11]["properties"]["group_restricted"] = 0                # a group regex: "Prompts" only (10 vs 2)
    g.nodes[11]["type"], g.nodes[11]["widgets_values"] = "Anything Everywhere?", [".*", ".*", "^Prom"]
    added = links_by_target(resolve_use_everywhere(g.ui()))
    assert added[(2, 0)] == (8, 1) and added[(3, 0)] == (1, 1)


def test_colour_restriction_and_priority_boost():
    g = sd_graph()
    g.nodes[3]["color"] = "#322"
    g.add(8, "CheckpointLoaderSimple", outputs=[MODEL, CLIP, VAE], widgets=["other.safetensors"])
    g.add(10, "Anything Everywhere", inputs=[("anything", "*")]).link(1, 1, 10, "anything")
    g.add(11, "Anything Everywhere", inputs=[("anything", "*")], color="#322").link(8, 1, 11, "anything")
    g.nodes[11]["properties"]["color_restricted"] = 1
    added = links_by_target(resolve_use_everywhere(g.ui()))
    assert added[(3, 0)] == (8, 1) and added[(2, 0)] == (1, 1)
    g.nodes[11]["properties"] = {"priority_boost": 1}                # unrestricted, boosted: everywhere
    added = links_by_target(resolve_use_everywhere(g.ui()))
    assert added[(3, 0)] == added[(2, 0)] == (8, 1)


def test_muted_ue_nodes_connected_inputs_and_rejecting_nodes_are_left_alone():
    g = sd_graph()
    g.add(10, "Anything Everywhere", inputs=[("anything", "*")]).link(1, 1, 10, "anything")
    g.add(9, "CLIPTextEncode", inputs=[("clip", CLIP)], outputs=[CONDITIONING], widgets=["x"])
    g.nodes[9]["properties"]["rejects_ue_links"] = True
    g.link(1, 0, 2, "clip")                                          # already linked (even wrongly): unchanged
    ui = resolve_use_everywhere(g.ui())
    added = links_by_target(ui)
    assert added[(3, 0)] == (1, 1) and (9, 0) not in added and added[(2, 0)] == (1, 0)
    assert len(ui["links"]) == len(g.links) + 1                      # only 3.clip: the one CLIP input left
    g.nodes[10]["mode"] = 2
    assert resolve_use_everywhere(g.ui())["links"] == g.links


def test_version_7_nodes_connect_widget_inputs_only_when_opted_in():
    g = sd_graph()
    g.nodes[4]["inputs"].append({"name": "seed", "type": INT, "link": None, "widget": {"name": "seed"}})
    g.add(12, "Seed Everywhere", outputs=[INT], widgets=[7, "fixed"])
    g.nodes[12]["properties"]["ue_properties"] = {"version": "7.0", "input_regex": "seed"}
    assert (4, 4) not in links_by_target(resolve_use_everywhere(g.ui()))
    g.nodes[4]["properties"]["ue_properties"] = {"widget_ue_connectable": {"seed": True}}
    assert links_by_target(resolve_use_everywhere(g.ui()))[(4, 4)] == (12, 0)


def test_a_workflow_without_ue_nodes_is_returned_as_is():
    ui = sd_graph().ui()
    assert resolve_use_everywhere(ui) is ui


def links_by_target(ui):
    """(target node, slot) → (origin node, slot) for every link of the UI graph."""
    return {(link[3], link[4]): (link[1], link[2]) for link in ui["links"]}
