"""Impact Pack's ImpactWildcardProcessor: the pack's draws from numpy's generator seeded with the node's seed."""

import numpy as np
import pytest

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes.packs import impact
from nodes.packs.impact import ImpactWildcardProcessor, expand_wildcards, read_wildcards
from nodes.packs.known_packs import explain_missing_node


@pytest.fixture
def paths(tmp_path):
    folder = tmp_path / "models" / "wildcards"
    (folder / "style").mkdir(parents=True)
    (folder / "color.txt").write_text("red\ngreen\nblue\n")
    (folder / "style" / "art.txt").write_text("oil painting\nwatercolor\n")
    (folder / "animal.txt").write_text("a __color__ cat\na {big|small} dog\n")
    (folder / "more.yaml").write_text("places:\n  indoor: [kitchen, hall]\n  outdoor: [park]\n")
    return Paths(models_dir=tmp_path / "models", input_dir=tmp_path / "input")


def _ctx(paths):
    return RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings={})


def _run(paths, text, seed, mode=True, populated=""):
    inputs = {"wildcard_text": text, "populated_text": populated, "mode": mode, "seed": seed,
              "Select to add Wildcard": "Select the Wildcard to add to the text"}
    return ImpactWildcardProcessor().run(_ctx(paths), **inputs)[0]


def test_files_and_yaml_lists_are_read_by_relative_name(paths):
    table = read_wildcards(paths.model_dirs("wildcards"))
    assert table["color"] == ["red", "green", "blue"]
    assert table["style/art"] == ["oil painting", "watercolor"]
    assert table["places/indoor"] == ["kitchen", "hall"] and table["places/outdoor"] == ["park"]


def _rng(seed):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("seed", [0, 1, 7, 2**64 - 1])
def test_a_wildcard_is_one_choice_of_its_lines_with_the_seeded_generator(paths, seed):
    assert _run(paths, "a __color__ car", seed) == f"a {_rng(seed).choice(['red', 'green', 'blue'])} car"


@pytest.mark.parametrize("seed", [3, 11])
def test_options_are_drawn_with_normalised_weights(paths, seed):
    expected = _rng(seed).choice(["a", "b", "c"], p=[0.25, 0.25, 0.5], size=1, replace=False)[0]
    assert _run(paths, "{a|b|2::c}", seed) == expected


@pytest.mark.parametrize("seed", [42, 43, 44])
def test_nested_wildcards_expand_options_first_then_files_in_order(paths, seed):
    rng = _rng(seed)
    line = str(rng.choice(["a __color__ cat", "a {big|small} dog"]))
    if "{" in line:   # the next pass replaces the options in the chosen line
        line = line.replace("{big|small}", rng.choice(["big", "small"], p=[0.5, 0.5], size=1, replace=False)[0])
    else:
        line = line.replace("__color__", str(rng.choice(["red", "green", "blue"])))
    assert _run(paths, "__animal__", seed) == line


def test_a_bare_name_finds_a_file_in_a_subfolder_and_globs_pool_lines(paths):
    assert _run(paths, "__art__", 5) == _rng(5).choice(["oil painting", "watercolor"])
    assert _run(paths, "__places/*__", 9) == _rng(9).choice(["kitchen", "hall", "park"])


def test_multi_select_draws_a_count_then_distinct_options_joined_by_the_separator(paths):
    rng = _rng(1)
    count = rng.integers(low=1, high=3, size=1)
    expected = ", ".join(rng.choice(["x", "y", "z"], p=[1 / 3] * 3, size=count, replace=False))
    assert _run(paths, "{1-2$$, $$x|y|z}", 1) == expected
    assert _run(paths, "{5$$x|y}", 2) in ("x y", "y x")   # more than there are: all of them, shuffled


def test_a_quantifier_repeats_the_wildcard(paths):
    rng = _rng(4)
    draws = [str(rng.choice(["red", "green", "blue"])) for _ in range(3)]
    assert _run(paths, "3#__color__", 4) == "|".join(draws)


def test_unknown_wildcards_stay_and_fixed_mode_passes_populated_text(paths):
    # The pack's quirk, kept: an unknown bare name is left rewritten as the subfolder glob it tried.
    assert _run(paths, "__nothing__ here", 0) == "__*/nothing__ here"
    assert _run(paths, "__no/thing__ here", 0) == "__no/thing__ here"
    assert _run(paths, "__color__", 0, mode=False, populated="kept as is") == "kept as is"


def test_same_seed_same_text_and_the_node_is_registered_under_the_pack_name(paths):
    table = read_wildcards(paths.model_dirs("wildcards"))
    text = "__animal__, __color__"
    assert expand_wildcards(text, 123, table) == expand_wildcards(text, 123, table)
    assert len({expand_wildcards(text, seed, table) for seed in range(20)}) > 3
    registry = NodeRegistry()
    registry.register_module(impact)
    info = registry.get("ImpactWildcardProcessor").object_info(paths)
    assert list(info["input"]["required"]) == ["wildcard_text", "populated_text", "mode", "seed",
                                               "Select to add Wildcard"]
    assert info["input"]["required"]["Select to add Wildcard"][0][1:] == [
        "__animal__", "__color__", "__places/indoor__", "__places/outdoor__", "__style/art__"]
    assert info["output"] == ["STRING"] and info["category"] == "ImpactPack/Prompt"


@pytest.mark.parametrize("class_type", ["UltralyticsDetectorProvider", "SAMLoader", "FaceDetailer",
                                        "ImpactSimpleDetectorSEGS"])
def test_detection_nodes_name_the_pack_and_that_detection_is_out_of_scope(class_type):
    message = explain_missing_node(class_type)
    assert "ltdrdata/ComfyUI-Impact-Pack" in message and "detection-based nodes" in message
    assert "out of scope" in message
