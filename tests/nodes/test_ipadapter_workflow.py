"""An IP-Adapter graph in ComfyUI's API format runs through the executor as the pack's users build it:
checkpoint → IPAdapterUnifiedLoader (preset) → IPAdapterAdvanced (reference image) → KSampler; the
cached, shared checkpoint model is not changed by it."""

from __future__ import annotations

import pytest
import torch

from engine.config import EngineConfig, build_registry
from engine.context import RunContext
from engine.declare import Out, node
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.types import IMAGE
from engine.workflow import Workflow
from nodes.models.family import SD15
from nodes.models.tiny import tiny_modules
from tests.nodes.test_ipadapter import VISION_NAME, save_ipadapter
from tests.nodes.test_reference_diffusers import CaptureValue, captured
from tests.nodes.vision_models import save_clip_vision


@node("IPAdapterTestImage", outputs=[Out(IMAGE)])
class IPAdapterTestImage:
    """A deterministic 40×48 reference image."""

    def run(self, ctx: RunContext):
        return (torch.rand((1, 40, 48, 3), generator=torch.Generator().manual_seed(12)),)


@pytest.fixture(scope="module")
def executor(models_dir):
    save_clip_vision(models_dir / "clip_vision", VISION_NAME)
    save_ipadapter(models_dir / "ipadapter", "ip-adapter-plus_sd15.safetensors", tiny_modules(SD15, 0)["unet"], "plus",
                   seed=9)
    builtin = [d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]
    registry = NodeRegistry([CaptureValue, IPAdapterTestImage, *builtin])
    root = models_dir.parent
    return Executor(registry, Paths(models_dir, root / "input", root / "output", root / "temp"))


def graph(with_adapter: bool, weight: float = 1.0) -> dict:
    model = ["ipa", 0] if with_adapter else ["4", 0]
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "img": {"class_type": "IPAdapterTestImage", "inputs": {}},
        "uni": {"class_type": "IPAdapterUnifiedLoader",
                "inputs": {"model": ["4", 0], "preset": "PLUS (high strength)"}},
        "ipa": {"class_type": "IPAdapterAdvanced", "inputs": {
            "model": ["uni", 0], "ipadapter": ["uni", 1], "image": ["img", 0], "weight": weight,
            "weight_type": "ease in", "combine_embeds": "concat", "start_at": 0.0, "end_at": 0.8,
            "embeds_scaling": "K+V"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": model, "seed": 7, "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "capture_latent": {"class_type": "CaptureValue", "inputs": {"value": ["3", 0]}},
    }


def latent(executor: Executor, with_adapter: bool, weight: float = 1.0) -> torch.Tensor:
    captured.clear()
    result = executor.execute(Workflow.from_api(graph(with_adapter, weight)))
    assert result.status == "success", result.error
    return captured["capture_latent"]["samples"]


@pytest.mark.slow  # four sampling runs through the executor: ~9 s on a busy 2-core machine
def test_an_ipadapter_graph_runs_and_leaves_the_shared_model_unchanged(executor):
    plain = latent(executor, False)
    adapted = latent(executor, True)
    assert (adapted - plain).abs().max() > 1e-3
    assert not torch.equal(latent(executor, True, weight=0.5), adapted)  # a new weight re-runs the apply node
    assert torch.equal(latent(executor, False), plain)
