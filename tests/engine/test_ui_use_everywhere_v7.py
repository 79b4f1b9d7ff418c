"""Use Everywhere version 7 rules: any node broadcasting its own outputs (`ue_convert`), and a type broadcast
twice sent by name (`repeated_type_rule`), as the pack's `add_ue_from_node` and `default_priority` make them."""

from engine.ui_use_everywhere import resolve_use_everywhere
from tests.engine.test_ui_use_everywhere import CONDITIONING, MODEL, links_by_target, sd_graph

V7 = {"version": "7.0.1", "widget_ue_connectable": {}}


def modern(g):
    """Every node saved by pack version 7 (ue_properties on each)."""
    for n in g.nodes.values():
        n["properties"].setdefault("ue_properties", dict(V7))
    return g


def test_a_converted_node_broadcasts_its_own_output_where_its_input_regex_matches():
    # The pack's docs/UE_example.json: each prompt broadcasts itself, to "positive" and "negative" respectively.
    g = sd_graph()
    for uid, pattern in ((2, "positive"), (3, "negative")):
        g.nodes[uid]["properties"] = {"ue_convert": True, "ue_properties": {**V7, "input_regex": pattern}}
    added = links_by_target(resolve_use_everywhere(modern(g).ui()))
    assert added[(4, 1)] == (2, 0) and added[(4, 2)] == (3, 0)


def test_a_converted_node_stays_a_target_and_never_feeds_itself():
    g = sd_graph()
    g.add(8, "CheckpointLoaderSimple", outputs=[MODEL, "CLIP", "VAE"], widgets=["m.safetensors"])
    g.nodes[8]["properties"] = {"ue_convert": True, "ue_properties": dict(V7)}
    g.nodes[2]["properties"] = {"ue_convert": True, "ue_properties": {**V7, "input_regex": "positive"}}
    added = links_by_target(resolve_use_everywhere(modern(g).ui()))
    assert added[(4, 0)] == (8, 0) and added[(2, 0)] == added[(3, 0)] == (8, 1) and added[(6, 1)] == (8, 2)
    assert (4, 2) not in added                                       # "negative" does not match "positive"


def test_outputs_marked_not_broadcasting_are_kept_back():
    g = sd_graph()
    g.add(8, "CheckpointLoaderSimple", outputs=[MODEL, "CLIP", "VAE"], widgets=["m.safetensors"])
    g.nodes[8]["properties"] = {"ue_convert": True,
                                "ue_properties": {**V7, "output_not_broadcasting": {"CLIP": True}}}
    added = links_by_target(resolve_use_everywhere(modern(g).ui()))
    assert added[(4, 0)] == (8, 0) and (2, 0) not in added


def test_a_type_sent_twice_goes_by_name_with_each_rule():
    g = sd_graph()
    g.add(11, "Anything Everywhere", inputs=[("positive", "*"), ("negative", "*")])
    g.link(2, 0, 11, "positive").link(3, 0, 11, "negative")          # CONDITIONING twice
    added = links_by_target(resolve_use_everywhere(modern(g).ui()))
    assert added[(4, 1)] == (2, 0) and added[(4, 2)] == (3, 0)          # rule 0: the same input name

    g.nodes[11]["inputs"][0]["label"], g.nodes[11]["inputs"][1]["label"] = "pos", "neg"
    g.nodes[11]["properties"]["ue_properties"]["repeated_type_rule"] = 1   # a common start
    added = links_by_target(resolve_use_everywhere(modern(g).ui()))
    assert added[(4, 1)] == (2, 0) and added[(4, 2)] == (3, 0)

    g.nodes[11]["inputs"][0]["label"], g.nodes[11]["inputs"][1]["label"] = "^p", "^n"
    g.nodes[11]["properties"]["ue_properties"]["repeated_type_rule"] = 4   # the name as a regex
    added = links_by_target(resolve_use_everywhere(modern(g).ui()))
    assert added[(4, 1)] == (2, 0) and added[(4, 2)] == (3, 0)

    g.nodes[11]["properties"]["ue_properties"]["repeated_type_rule"] = 0   # "^p" names no input
    added = links_by_target(resolve_use_everywhere(modern(g).ui()))
    assert (4, 1) not in added and (4, 2) not in added


def test_a_repeated_type_raises_the_default_priority_by_20():
    g = sd_graph()
    g.add(8, "CLIPTextEncode", inputs=[("clip", "CLIP")], outputs=[CONDITIONING], widgets=["other"])
    g.add(10, "Anything Everywhere", inputs=[("anything", "*")]).link(8, 0, 10, "anything")   # 10
    g.add(11, "Anything Everywhere", inputs=[("positive", "*"), ("negative", "*")])           # 30, by name
    g.link(2, 0, 11, "positive").link(3, 0, 11, "negative")
    added = links_by_target(resolve_use_everywhere(modern(g).ui()))
    assert added[(4, 1)] == (2, 0) and added[(4, 2)] == (3, 0)
