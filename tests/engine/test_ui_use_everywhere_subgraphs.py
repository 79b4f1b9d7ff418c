"""Use Everywhere with subgraphs, as the pack's browser code resolves them (for_all_graphs → analyse_graph):
each graph on its own, UE nodes inside a definition broadcasting within it, the subgraph's inputs as sources
and its unlinked outputs as targets; top-level broadcasts reach a subgraph only through the instance's inputs.
"""

import pytest

from engine.registry import NodeRegistry
from engine.ui_format import ui_to_api
from engine.ui_use_everywhere import resolve_use_everywhere
from tests.engine.test_ui_use_everywhere import CLIP, CONDITIONING, IMAGE, INT, LATENT, MODEL, VAE, Graph, source
from tests.engine.toy_nodes import comfy_toy_nodes

SUB = "3b0e0c39-6f44-4a57-9a5e-5f0c2d9e7a10"


@pytest.fixture(scope="module")
def registry():
    return NodeRegistry(comfy_toy_nodes())


class Subgraph(Graph):
    """A subgraph definition: a Graph whose links are objects, with input and output slots; `link_in` and
    `link_out` wire the subgraph's input node (-10) and output node (-20)."""

    def __init__(self, inputs=(), outputs=()):
        super().__init__()
        self.inputs = [{"id": f"in{i}", "name": n, "type": t, "linkIds": []} for i, (n, t) in enumerate(inputs)]
        self.outputs = [{"id": f"out{i}", "name": n, "type": t, "linkIds": []} for i, (n, t) in enumerate(outputs)]

    def link(self, origin, slot, target, name):
        """As Graph.link, with ids from 100 up: ids are unique across the file, as the editor keeps them."""
        super().link(origin, slot, target, name)
        link = self.links[-1]
        link[0] = 100 + len(self.links) - 1
        self.nodes[target]["inputs"][link[4]]["link"] = link[0]
        return self

    def link_in(self, slot, target, name, link_type=None):
        index = next(i for i, inp in enumerate(self.nodes[target]["inputs"]) if inp["name"] == name)
        link_id = 100 + len(self.links)
        self.links.append([link_id, -10, slot, target, index, link_type or self.inputs[slot]["type"]])
        self.nodes[target]["inputs"][index]["link"] = link_id
        self.inputs[slot]["linkIds"].append(link_id)
        return self

    def link_out(self, origin, slot, out_slot):
        link_id = 100 + len(self.links)
        self.links.append([link_id, origin, slot, -20, out_slot, self.outputs[out_slot]["type"]])
        self.outputs[out_slot]["linkIds"].append(link_id)
        return self

    def definition(self):
        keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
        return {"id": SUB, "name": "sampler", "nodes": list(self.nodes.values()), "groups": self.groups,
                "links": [dict(zip(keys, link)) for link in self.links],
                "inputs": self.inputs, "outputs": self.outputs}


def with_subgraph(top: Graph, sub: Subgraph) -> dict:
    ui = top.ui()
    ui["definitions"] = {"subgraphs": [sub.definition()]}
    return ui


def sampler_subgraph() -> Subgraph:
    """Prompts, latent and a sampler; model and clip come in through the subgraph's inputs, the latent goes out."""
    s = Subgraph(inputs=[("model", MODEL), ("clip", CLIP)], outputs=[("LATENT", LATENT)])
    s.add(2, "CLIPTextEncode", inputs=[("clip", CLIP)], outputs=[CONDITIONING], widgets=["a cat"])
    s.add(3, "CLIPTextEncode", inputs=[("clip", CLIP)], outputs=[CONDITIONING], widgets=["blurry"])
    s.add(4, "KSampler", inputs=[("model", MODEL), ("positive", CONDITIONING), ("negative", CONDITIONING),
                                 ("latent_image", LATENT)], outputs=[LATENT],
          widgets=[5, "fixed", 20, 8.0, "euler", "normal", 1.0])
    s.add(5, "EmptyLatentImage", outputs=[LATENT], widgets=[512, 512, 1])
    return s.link(5, 0, 4, "latent_image").link_in(0, 4, "model")


def top_graph(instance_inputs=(("model", MODEL), ("clip", CLIP))) -> Graph:
    """A loader, the subgraph instance (20) with its inputs unlinked, decode and save."""
    g = Graph()
    g.add(1, "CheckpointLoaderSimple", outputs=[MODEL, CLIP, VAE], widgets=["model.safetensors"])
    g.add(20, SUB, inputs=list(instance_inputs), outputs=[LATENT])
    g.add(6, "VAEDecode", inputs=[("samples", LATENT), ("vae", VAE)], outputs=[IMAGE])
    g.add(7, "SaveImage", inputs=[("images", IMAGE)], widgets=["out"])
    return g.link(20, 0, 6, "samples").link(6, 0, 7, "images")


def test_ue_nodes_inside_a_subgraph_broadcast_within_it_from_its_inputs_to_its_outputs(registry):
    sub = sampler_subgraph()
    sub.add(11, "Prompts Everywhere", inputs=[("+ve", CONDITIONING), ("-ve", CONDITIONING)])
    sub.link(2, 0, 11, "+ve").link(3, 0, 11, "-ve")
    sub.add(12, "Anything Everywhere", inputs=[("anything", "*")]).link(4, 0, 12, "anything")   # → output slot
    sub.add(13, "Anything Everywhere", inputs=[("anything", "*")]).link_in(1, 13, "anything", "*")  # the clip input
    top = top_graph()
    top.add(10, "Anything Everywhere3", inputs=[("anything", "*"), ("anything2", "*"), ("anything3", "*")])
    top.link(1, 0, 10, "anything").link(1, 1, 10, "anything2").link(1, 2, 10, "anything3")
    wf = ui_to_api(with_subgraph(top, sub), registry)
    assert source(wf, "20:4", "positive") == ("20:2", 0) and source(wf, "20:4", "negative") == ("20:3", 0)
    # The subgraph's clip input (typed CLIP by its slot, though linked as "*") feeds both prompts; the top-level
    # broadcast fills the instance's own unlinked inputs, so the loader's CLIP and MODEL arrive through them.
    assert source(wf, "20:2", "clip") == source(wf, "20:3", "clip") == ("1", 1)
    assert source(wf, "20:4", "model") == ("1", 0)
    assert source(wf, "6", "samples") == ("20:4", 0)                  # the output node was a target
    assert source(wf, "6", "vae") == ("1", 2)
    assert not any(n.class_type in ("Anything Everywhere", "Prompts Everywhere") for n in wf.nodes.values())


def test_a_top_level_broadcast_never_reaches_inside_and_an_inner_one_never_leaves(registry):
    sub = sampler_subgraph()
    sub.add(8, "CheckpointLoaderSimple", outputs=[MODEL, CLIP, VAE], widgets=["inner.safetensors"])
    sub.add(12, "Anything Everywhere", inputs=[("anything", "*")]).link(8, 2, 12, "anything")   # a VAE inside
    top = top_graph(instance_inputs=[("model", MODEL)])
    top.add(10, "Anything Everywhere", inputs=[("anything", "*")]).link(1, 1, 10, "anything")   # CLIP outside
    ui = with_subgraph(top, sub)
    resolved = resolve_use_everywhere(ui)
    inner = resolved["definitions"]["subgraphs"][0]
    assert inner["links"] == ui["definitions"]["subgraphs"][0]["links"]   # nothing inside takes a VAE or CLIP
    wf = ui_to_api(ui, registry)
    assert "clip" not in wf.nodes["20:2"].inputs                       # the CLIP broadcast stays outside
    assert "vae" not in wf.nodes["6"].inputs                          # the inner VAE stays inside


def test_an_input_fed_by_the_subgraph_input_counts_as_connected(registry):
    sub = sampler_subgraph()
    sub.add(8, "CheckpointLoaderSimple", outputs=[MODEL, CLIP, VAE], widgets=["inner.safetensors"])
    sub.add(12, "Anything Everywhere", inputs=[("anything", "*")]).link(8, 0, 12, "anything")   # a MODEL inside
    top = top_graph(instance_inputs=[("model", MODEL)]).link(1, 0, 20, "model")
    wf = ui_to_api(with_subgraph(top, sub), registry)
    assert source(wf, "20:4", "model") == ("1", 0)                    # linked from -10: not overridden


def test_seed_everywhere_inside_a_subgraph_sets_its_seed_widgets(registry):
    sub = sampler_subgraph()
    sub.nodes[4]["inputs"].append({"name": "seed", "type": INT, "link": None, "widget": {"name": "seed"}})
    sub.add(14, "Seed Everywhere", outputs=[INT], widgets=[4242, "fixed"])
    top = top_graph(instance_inputs=[("model", MODEL)]).link(1, 0, 20, "model")
    wf = ui_to_api(with_subgraph(top, sub), registry)
    assert wf.nodes["20:4"].inputs["seed"] == 4242


def test_a_linked_output_is_kept_and_a_title_regex_can_name_the_output_node():
    sub = sampler_subgraph()
    sub.add(9, "KSampler", inputs=[("model", MODEL), ("positive", CONDITIONING), ("negative", CONDITIONING),
                                   ("latent_image", LATENT)], outputs=[LATENT],
            widgets=[5, "fixed", 20, 8.0, "euler", "normal", 1.0])
    sub.add(12, "Anything Everywhere?", inputs=[("anything", "*")], widgets=["^subgraph output", ".*", ".*"])
    sub.link(9, 0, 12, "anything")
    ui = with_subgraph(top_graph(), sub)
    inner = resolve_use_everywhere(ui)["definitions"]["subgraphs"][0]
    into_output = [link for link in inner["links"] if link["target_id"] == -20]
    assert [(link["origin_id"], link["origin_slot"], link["target_slot"]) for link in into_output] == [(9, 0, 0)]
    assert inner["outputs"][0]["linkIds"] == [into_output[0]["id"]]
    assert not any(link["target_id"] == 4 and link["origin_id"] == 9 for link in inner["links"])  # title ≠ regex

    sub.link_out(4, 0, 0)                                              # already linked: left as it is
    inner = resolve_use_everywhere(with_subgraph(top_graph(), sub))["definitions"]["subgraphs"][0]
    assert [(link["origin_id"], link["target_slot"]) for link in inner["links"] if link["target_id"] == -20] == [
        (4, 0)]


def test_new_link_ids_are_unique_across_the_file():
    sub = sampler_subgraph()
    sub.add(11, "Prompts Everywhere", inputs=[("+ve", CONDITIONING), ("-ve", CONDITIONING)])
    sub.link(2, 0, 11, "+ve").link(3, 0, 11, "-ve")
    top = top_graph()
    top.add(10, "Anything Everywhere", inputs=[("anything", "*")]).link(1, 0, 10, "anything")
    resolved = resolve_use_everywhere(with_subgraph(top, sub))
    inner = resolved["definitions"]["subgraphs"][0]
    ids = [link[0] for link in resolved["links"]] + [link["id"] for link in inner["links"]]
    assert len(ids) == len(set(ids)) and resolved["last_link_id"] == max(ids)
