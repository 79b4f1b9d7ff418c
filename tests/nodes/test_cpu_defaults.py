"""The CPU defaults: bf16 where the processor computes it natively, channels_last convolutions,
and a bf16 run that stays close to the fp32 one. (The other node tests run at fp32, see conftest.)"""

from pathlib import Path

import pytest
import torch

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.paths import Paths
from engine.workflow import Workflow
from nodes.models import runtime
from nodes.models.runtime import cpu_has_native_bf16, runtime_from_settings
from tests.nodes.capture import Capture

# A bf16 run of the tiny pipeline against the fp32 run of the same workflow: the final latent's
# relative L2 error (bf16 keeps 8 significant bits, ~0.4 %; measured ~0.05 %) and the image's
# largest pixel difference (measured 0.0006).
LATENT_RELATIVE_TOLERANCE = 1e-2
IMAGE_TOLERANCE = 2 / 255


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)


@pytest.fixture
def fp32_only_cpu(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)


def test_auto_is_bf16_with_channels_last_on_a_cpu_with_native_bf16(bf16_cpu):
    chosen = runtime_from_settings({"device": "cpu"})
    assert chosen.precision == "bf16" and chosen.memory_format == torch.channels_last
    assert runtime_from_settings({"device": "cpu", "precision": "auto"}).precision == "bf16"


def test_auto_is_fp32_on_a_cpu_without_it(fp32_only_cpu):
    assert runtime_from_settings({"device": "cpu"}).precision == "fp32"


def test_an_explicit_precision_always_wins(bf16_cpu):
    assert runtime_from_settings({"device": "cpu", "precision": "fp32"}).dtype == torch.float32
    assert runtime_from_settings({"device": "cpu", "precision": "fp16"}).dtype == torch.float16


def test_gpus_keep_fp16_and_the_contiguous_layout(bf16_cpu):
    chosen = runtime_from_settings({"device": "cuda", "precision": "auto"})
    assert chosen.precision == "fp16" and chosen.memory_format == torch.contiguous_format


def test_native_bf16_detection_agrees_with_the_cpu_flags():
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split())
    detect = cpu_has_native_bf16.__wrapped__  # the real probe, not the suite's fp32 stand-in
    assert detect() == bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.fixture(scope="module")
def registry():
    registry = build_registry(EngineConfig(extension_dirs=[]))
    registry.register(Capture)
    return registry


def run_txt2img(registry, models_dir, tmp_path, **settings) -> tuple[torch.Tensor, torch.Tensor, object]:
    """(final latent, decoded image, MODEL handle) of a 4-step euler txt2img at these settings."""
    captured: list = []
    executor = Executor(registry, Paths(models_dir, tmp_path / "in", tmp_path / "out", tmp_path / "tmp"),
                        settings={**settings, "captured": captured})
    result = executor.execute(Workflow.from_api({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": 1, "steps": 4, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "c1": {"class_type": "Capture", "inputs": {"value": ["3", 0]}},
        "c2": {"class_type": "Capture", "inputs": {"value": ["8", 0]}},
        "c3": {"class_type": "Capture", "inputs": {"value": ["4", 0]}}}))
    assert result.status == "success", result.error
    by_type = {type(v).__name__: v for v in captured}
    return by_type["dict"]["samples"], by_type["Tensor"], by_type["ModelHandle"]


def test_the_default_loads_bf16_weights_with_channels_last_convolutions(bf16_cpu, registry, models_dir, tmp_path):
    _, _, model = run_txt2img(registry, models_dir, tmp_path)
    assert all(p.dtype == torch.bfloat16 for p in model.unet.parameters())
    kernels = [p for p in model.unet.parameters() if p.ndim == 4]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)


def test_a_bf16_run_stays_close_to_the_fp32_run(bf16_cpu, registry, models_dir, tmp_path):
    latent_bf16, image_bf16, _ = run_txt2img(registry, models_dir, tmp_path)
    latent_fp32, image_fp32, _ = run_txt2img(registry, models_dir, tmp_path, precision="fp32")
    assert latent_bf16.dtype == latent_fp32.dtype == torch.float32, "sampling arithmetic stays float32"
    error = (latent_bf16 - latent_fp32).norm() / latent_fp32.norm()
    assert error < LATENT_RELATIVE_TOLERANCE, f"relative latent error {error:.2e}"
    assert (image_bf16 - image_fp32).abs().max() < IMAGE_TOLERANCE
