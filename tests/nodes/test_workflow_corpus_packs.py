"""tools/workflow_corpus.py on workflows that use custom pack nodes: valid without our rebuilt packs (nodes/packs,
Use Everywhere's links) or only with them, the before/after table, and workflows carried by PNGs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from PIL import Image

from engine.config import EngineConfig, build_registry
from engine.pngmeta import png_text_chunks, pnginfo
from tools.workflow_corpus import CorpusWorkflow, check, node_origins, pack_table, read_corpus, without_packs

DEFAULT = Path(__file__).resolve().parents[1] / "fixtures" / "comfy_workflows" / "default.json"


@pytest.fixture(scope="module")
def registries():
    full = build_registry(EngineConfig(extension_dirs=[]))
    return full, without_packs(full)


def default_ui() -> dict:
    """ComfyUI's default workflow: loader (4), prompts (6, 7), empty latent (5), KSampler (3), decode (8), save (9)."""
    return json.loads(DEFAULT.read_text())


def with_latent_upscale_o(ui: dict) -> dict:
    """The empty latent reaches the KSampler through `LatentUpscaleFactor _O` (node 100, the _O pack's)."""
    ui = copy.deepcopy(ui)
    latent_link = next(link for link in ui["links"] if link[0] == 2)   # 5.LATENT → 3.latent_image
    latent_link[3], latent_link[4] = 100, 0
    ui["links"].append([10, 100, 0, 3, 3, "LATENT"])
    next(n for n in ui["nodes"] if n["id"] == 3)["inputs"][3]["link"] = 10
    ui["nodes"].append({"id": 100, "type": "LatentUpscaleFactor _O", "mode": 0, "pos": [0, 0], "size": [10, 10],
                        "inputs": [{"name": "samples", "type": "LATENT", "link": 2}],
                        "outputs": [{"name": "LATENT", "type": "LATENT", "links": [10]}],
                        "properties": {}, "widgets_values": ["nearest-exact", 1.0, 1.0, "disabled"]})
    return ui


def with_model_everywhere(ui: dict) -> dict:
    """The KSampler's model comes from an `Anything Everywhere` (node 101) fed by the loader's MODEL."""
    ui = copy.deepcopy(ui)
    model_link = next(link for link in ui["links"] if link[0] == 1)    # 4.MODEL → 3.model
    model_link[3], model_link[4] = 101, 0
    next(n for n in ui["nodes"] if n["id"] == 3)["inputs"][0]["link"] = None
    ui["nodes"].append({"id": 101, "type": "Anything Everywhere", "mode": 0, "pos": [0, 0], "size": [10, 10],
                        "inputs": [{"name": "anything", "type": "*", "link": 1}], "outputs": [],
                        "properties": {}, "widgets_values": []})
    return ui


def outcome_pair(workflow, registries, tmp_path):
    full, core = registries
    before = check(workflow, core, tmp_path / "before", use_everywhere=False)
    after = check(workflow, full, tmp_path / "after")
    return before, after


def test_the_core_registry_leaves_out_only_our_pack_nodes(registries):
    full, core = registries
    assert "LatentUpscaleFactor _O" in full and "LatentUpscaleFactor _O" not in core
    assert "KSampler" in core and "UltimateSDUpscale" not in core and "NNLatentUpscale" not in core
    assert all(decl.cls.__module__.startswith("nodes.packs.") for decl in full if decl.class_type not in core)
    assert core.explain_missing("ADE_AnimateDiffLoaderWithContext") is not None   # packs we do not build


def test_a_pack_node_validates_only_with_our_packs(registries, tmp_path):
    before, after = outcome_pair(CorpusWorkflow("t", "o", with_latent_upscale_o(default_ui())), registries, tmp_path)
    assert (before.valid, before.missing) == (False, ["LatentUpscaleFactor _O"])
    assert (after.valid, after.missing, after.error) == (True, [], "")


def test_use_everywhere_validates_only_once_its_broadcasts_are_resolved(registries, tmp_path):
    before, after = outcome_pair(CorpusWorkflow("t", "ue", with_model_everywhere(default_ui())), registries, tmp_path)
    assert (before.valid, before.missing) == (False, ["Anything Everywhere"])
    assert after.valid, after.error


def test_the_pack_table_counts_workflows_using_custom_nodes_before_and_after(registries, tmp_path):
    corpus = [CorpusWorkflow("t", "core", default_ui()),
              CorpusWorkflow("t", "o", with_latent_upscale_o(default_ui())),
              CorpusWorkflow("t", "ue", with_model_everywhere(default_ui())),
              CorpusWorkflow("t", "missing", {**default_ui(), "nodes": default_ui()["nodes"] + [
                  {"id": 102, "type": "SAMLoader", "mode": 0, "inputs": [], "outputs": [], "widgets_values": []}]})]
    pairs = [outcome_pair(w, registries, tmp_path / w.name) for w in corpus]
    origins = node_origins(corpus, registries[1])
    table = pack_table([b for b, _ in pairs], [a for _, a in pairs], origins)
    rows = {line[:30].strip(): line[30:].split() for line in table.splitlines()[:5]}
    assert rows["SD1.x"] == ["3", "0", "2"] and rows["all in scope"] == ["3", "0", "2"]   # "core" is left out
    assert "  SAMLoader (1)" in table.splitlines()


def test_pngs_in_a_folder_bring_the_workflows_they_carry(tmp_path):
    ui = default_ui()
    Image.new("RGB", (8, 8)).save(tmp_path / "with.png", pnginfo=pnginfo(png_text_chunks(None, {"workflow": ui})))
    Image.new("RGB", (8, 8)).save(tmp_path / "without.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    corpus = read_corpus([tmp_path])
    assert [(w.name, w.ui["nodes"] == ui["nodes"]) for w in corpus] == [("with", True)]
