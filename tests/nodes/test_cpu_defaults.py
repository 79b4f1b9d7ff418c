"""The CPU defaults: bf16 where the processor computes it natively, channels_last convolutions,
and a bf16 run that stays close to the fp32 one. (The other node tests run at fp32, see conftest.)"""

from pathlib import Path

import pytest
import torch

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.paths import Paths
from nodes.models import runtime
from nodes.models.runtime import cpu_has_native_bf16, runtime_from_settings
from tests.nodes.capture import Capture, captured_txt2img

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


@pytest.mark.parametrize(("cap", "native"), [("AVX512_CORE_VNNI", False), ("avx2", False), ("AVX512_CORE", False),
                                             ("AVX512_CORE_BF16", None), ("AVX512_CORE_AMX", None), ("", None)])
def test_a_onednn_isa_cap_below_bf16_rules_native_bf16_out(monkeypatch, cap, native):
    """None: the cap leaves bf16 to the hardware (this CPU's flags)."""
    for name in runtime.ISA_CAP_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", cap)  # oneDNN's older name counts too
    hardware = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert runtime.onednn_isa_cap() == (cap.upper() or None)
    assert cpu_has_native_bf16.__wrapped__() is (hardware if native is None else native)


@pytest.fixture(scope="module")
def registry():
    registry = build_registry(EngineConfig(extension_dirs=[]))
    registry.register(Capture)
    return registry


def run_txt2img(registry, models_dir, tmp_path, **settings) -> tuple[torch.Tensor, torch.Tensor, object]:
    """(final latent, decoded image, MODEL handle) of a 4-step euler txt2img at these settings."""
    paths = Paths(models_dir, tmp_path / "in", tmp_path / "out", tmp_path / "tmp")
    result, out = captured_txt2img(lambda run_settings: Executor(registry, paths, settings=run_settings), **settings)
    assert out is not None, result.error
    return out["latent"], out["image"], out["model"]


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


def test_without_native_bf16_the_fp32_unet_keeps_plain_convolutions(fp32_only_cpu, registry, models_dir, tmp_path):
    """As fast as channels_last for the fp32 UNet (bench/RESULTS.md), and the compiled graph takes plain weights
    without copying them; the other parts (VAE, ControlNets) stay channels_last."""
    chosen = runtime_from_settings({"device": "cpu"})
    assert chosen.memory_format == torch.channels_last and chosen.unet_memory_format == torch.contiguous_format
    assert runtime_from_settings({"device": "cpu", "precision": "bf16"}).unet_memory_format == torch.channels_last
    _, _, model = run_txt2img(registry, models_dir, tmp_path)
    kernels = [p for p in model.unet.parameters() if p.ndim == 4 and p.shape[-1] > 1]
    assert kernels and all(p.dtype == torch.float32 and p.is_contiguous() for p in kernels)
