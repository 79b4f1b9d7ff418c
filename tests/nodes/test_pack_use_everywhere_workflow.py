"""A Use Everywhere workflow (as the editor saves it) converts to the API graph the pack's browser code
would queue, and runs headless on the tiny model with the built-in nodes and the WAS text nodes."""

import pytest

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.paths import Paths
from engine.ui_format import ui_to_api


def inp(name, type_, link=None, widget=False):
    return {"name": name, "type": type_, "link": link, **({"widget": {"name": name}} if widget else {})}


def ue_workflow():
    """Every model, clip, vae, prompt and seed input of the sampler graph is left to UE nodes."""
    nodes = [
        {"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["tiny-sd15.safetensors"], "inputs": [],
         "outputs": [{"name": "MODEL", "type": "MODEL"}, {"name": "CLIP", "type": "CLIP"},
                     {"name": "VAE", "type": "VAE"}]},
        {"id": 2, "type": "Text Multiline", "widgets_values": ["# the positive prompt\na red circle"],
         "outputs": [{"name": "STRING", "type": "STRING"}]},
        {"id": 3, "type": "CLIPTextEncode", "widgets_values": [""], "title": "Positive",
         "inputs": [inp("clip", "CLIP"), inp("text", "STRING", link=1, widget=True)],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING"}]},
        {"id": 4, "type": "CLIPTextEncode", "widgets_values": ["blurry"], "inputs": [inp("clip", "CLIP")],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING"}]},
        {"id": 5, "type": "EmptyLatentImage", "widgets_values": [64, 64, 1], "outputs": [{"type": "LATENT"}]},
        {"id": 6, "type": "KSampler", "widgets_values": [0, "fixed", 2, 7.0, "euler", "normal", 1.0],
         "inputs": [inp("model", "MODEL"), inp("positive", "CONDITIONING"), inp("negative", "CONDITIONING"),
                    inp("latent_image", "LATENT", link=2), inp("seed", "INT", widget=True)],
         "outputs": [{"type": "LATENT"}]},
        {"id": 7, "type": "VAEDecode", "inputs": [inp("samples", "LATENT", link=3), inp("vae", "VAE")],
         "outputs": [{"type": "IMAGE"}]},
        {"id": 8, "type": "PreviewImage", "inputs": [inp("images", "IMAGE", link=4)]},
        {"id": 10, "type": "Anything Everywhere3",
         "inputs": [inp("anything", "*", link=5), inp("anything2", "*", link=6), inp("anything3", "*", link=7)]},
        {"id": 11, "type": "Prompts Everywhere",
         "inputs": [inp("+ve", "CONDITIONING", link=8), inp("-ve", "CONDITIONING", link=9)]},
        {"id": 12, "type": "Seed Everywhere", "widgets_values": [1234, "fixed"], "outputs": [{"type": "INT"}]},
    ]
    links = [[1, 2, 0, 3, 1, "STRING"], [2, 5, 0, 6, 3, "LATENT"], [3, 6, 0, 7, 0, "LATENT"],
             [4, 7, 0, 8, 0, "IMAGE"], [5, 1, 0, 10, 0, "MODEL"], [6, 1, 1, 10, 1, "CLIP"], [7, 1, 2, 10, 2, "VAE"],
             [8, 3, 0, 11, 0, "CONDITIONING"], [9, 4, 0, 11, 1, "CONDITIONING"]]
    for node in nodes:
        node.setdefault("mode", 0)
        node.setdefault("inputs", [])
        node.setdefault("properties", {})
    return {"nodes": nodes, "links": links, "groups": [], "last_link_id": 9, "version": 0.4}


@pytest.fixture(scope="module")
def registry():
    return build_registry(EngineConfig(extension_dirs=[]))


def test_the_ue_workflow_converts_to_the_graph_the_pack_would_queue(registry):
    api = ui_to_api(ue_workflow(), registry).to_api()
    assert set(api) == {"1", "2", "3", "4", "5", "6", "7", "8"}
    assert api["6"]["inputs"] == {"seed": 1234, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                  "scheduler": "normal", "denoise": 1.0, "model": ["1", 0], "positive": ["3", 0],
                                  "negative": ["4", 0], "latent_image": ["5", 0]}
    assert api["3"]["inputs"] == {"text": ["2", 0], "clip": ["1", 1]}
    assert api["4"]["inputs"] == {"text": "blurry", "clip": ["1", 1]}
    assert api["7"]["inputs"] == {"samples": ["6", 0], "vae": ["1", 2]}


def test_the_ue_workflow_runs_headless(registry, models_dir, tmp_path):
    paths = Paths(models_dir, tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    executor = Executor(registry, paths)
    workflow = ui_to_api(ue_workflow(), registry)
    assert executor.validate(workflow).ok
    result = executor.execute(workflow)
    assert result.status == "success", result.error
    assert len(result.outputs["8"]["images"]) == 1
