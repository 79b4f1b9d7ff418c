"""A ControlNet's hint is prepared (resized, batched, moved to the net's device and dtype) once per sampling run,
not on every step, and a T2I-Adapter's features are computed once; the latent is what preparing the hint on
every step gives."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes.models.family import SD15
from nodes.sampling import control as control_module
from tests.nodes.checkpoints import save_tiny_checkpoint
from tests.nodes.test_controlnet import STEPS, TestHintImage, apply_advanced, base_graph, run_ours, tiny_controlnet
from tests.nodes.test_reference_diffusers import CaptureValue
from tests.nodes.test_t2i_adapter import original_layout, tiny_adapter

assert STEPS > 1, "a multi-step run tells one preparation per run from one per step"


def controlnet_executor(root) -> Executor:
    """An executor over the tiny SD1.5 checkpoint, ControlNets `a` and `b` and a T2I-Adapter `t2i` in `root`."""
    models = root / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "controlnet").mkdir()
    _, modules = save_tiny_checkpoint(models / "checkpoints", SD15, seed=3, name="tiny-sd15")
    for name, seed in (("a.safetensors", 1), ("b.safetensors", 2)):
        net = tiny_controlnet(modules["unet"], seed)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(models / "controlnet" / name))
    save_file(original_layout(tiny_adapter(1)), str(models / "controlnet" / "t2i.safetensors"))
    registry = NodeRegistry([CaptureValue, TestHintImage,
                             *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    return Executor(registry, Paths(models, root / "input", root / "output", root / "temp"))


def prepare_hints_on_every_call(monkeypatch) -> list[int]:
    """Make the denoiser prepare hints on each ControlNet call, as before the cache; returns the calls (one 1 each)."""
    calls: list[int] = []
    original = control_module.control_residuals

    def uncached(*args, **kwargs):
        kwargs.pop("hints", None)
        calls.append(1)
        return original(*args[:7], **kwargs)  # without the run's hints: prepared for this call alone
    monkeypatch.setattr("nodes.sampling.cfg.control_residuals", uncached)
    return calls


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    return controlnet_executor(tmp_path_factory.mktemp("hint_cache"))


@pytest.fixture
def counted(monkeypatch):
    """Counts of the hint preparations (`hint_for`) and adapter forwards (`adapter_features`) while sampling."""
    counts = {"hint_for": 0, "adapter_features": 0}
    for name in counts:
        original = getattr(control_module, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(control_module, name, counting)
    return counts


def sampled(executor, controls: list[tuple[str, int]], sides: str = "both") -> torch.Tensor:
    """The latent KSampler gives with these ControlNets (each test samples a graph of its own, so KSampler runs)."""
    graph = base_graph()
    after = (["6", 0], ["7", 0])
    for index, (name, seed) in enumerate(controls):
        after = apply_advanced(graph, f"c{index}", after, name, seed, 0.8)
    graph["3"]["inputs"]["positive"] = after[0]
    graph["3"]["inputs"]["negative"] = after[1] if sides == "both" else ["7", 0]
    return run_ours(executor, graph)["latent"]["samples"]


def test_one_controlnet_on_both_sides_prepares_its_hint_once_a_run(executor, counted):
    sampled(executor, [("a.safetensors", 4)])
    assert counted["hint_for"] == 1  # cond and uncond share one pass; STEPS steps, one preparation


def test_each_side_with_its_own_controls_prepares_each_hint_once_a_run(executor, counted):
    sampled(executor, [("a.safetensors", 4), ("b.safetensors", 5)], sides="positive")
    assert counted["hint_for"] == 2


def test_a_t2i_adapters_features_are_computed_once_a_run(executor, counted):
    sampled(executor, [("t2i.safetensors", 6)])
    assert counted["adapter_features"] == 1


def test_the_latent_equals_one_with_every_hint_prepared_on_every_step(executor, monkeypatch):
    controls = [("a.safetensors", 4), ("b.safetensors", 5), ("t2i.safetensors", 6)]
    cached = sampled(executor, controls)
    prepared_each_step = prepare_hints_on_every_call(monkeypatch)
    fresh = sampled(Executor(executor.registry, executor.paths), controls)  # an empty cache: KSampler runs again
    assert len(prepared_each_step) == STEPS
    torch.testing.assert_close(cached, fresh, atol=0, rtol=0)
