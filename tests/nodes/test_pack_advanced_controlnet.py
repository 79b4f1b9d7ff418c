"""Advanced-ControlNet's basics: scaled-soft weights scale each ControlNet residual as the pack computes them,
a mask scales them where it is below 1, and the nodes wire into sampling as the pack's do."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes.conditioning.value import AppliedControl, CondEntry
from nodes.packs.advanced_controlnet import (
    ACNAdvancedControlNetApply,
    AdvancedControlNetHandle,
    ControlNetLoaderAdvanced,
    ControlWeights,
    ScaledSoftControlNetWeights,
    TimestepKeyframes,
    WeightedControl,
)
from nodes.sampling import ModelSampling
from nodes.sampling.control import control_residuals
from tests.nodes.comfy_controlnet_packs_object_info import ADVANCED_CONTROLNET_NODES
from tests.nodes.test_controlnet import base_graph, run_ours, setup  # noqa: F401  (setup: the module fixture)
from tests.nodes.test_pack_object_info import comparable

# The pack's SoftControlNetWeights defaults: the scaled-soft weights of 0.825 written out (weight_00 … weight_12)
SOFT_WEIGHTS = [0.09941396206337118, 0.12050177219802567, 0.14606275417942507, 0.17704576264172736,
                0.214600924414215, 0.26012233262329093, 0.3152997971191405, 0.3821815722656249, 0.4632503906249999,
                0.561515625, 0.6806249999999999, 0.825, 1.0]


def context(paths: Paths) -> RunContext:
    return RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings={"precision": "fp32"})


@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    registry.load_package("nodes.packs")
    return registry.object_info()


@pytest.mark.parametrize("class_type", sorted(ADVANCED_CONTROLNET_NODES))
def test_declarations_match_the_pack(object_info, class_type):
    ours, theirs = object_info[class_type], ADVANCED_CONTROLNET_NODES[class_type]
    for section in ("required", "optional"):
        expected, actual = theirs.get(section, {}), ours["input"].get(section, {})
        assert list(actual) == list(expected), f"{section} input order"
        for name, entry in expected.items():
            if entry[0] is not None:
                assert comparable(actual[name]) == comparable(entry), name
    assert (ours["output"], ours["output_name"]) == (theirs["output"], theirs["output_name"])
    assert ours["python_module"] == "nodes.packs.advanced_controlnet"


def test_scaled_soft_weights_are_the_packs_soft_weights():
    weights, shortcut = ScaledSoftControlNetWeights().run(None, 0.825, False)  # type: ignore[arg-type]
    down, mid = weights.block_scales(12)
    assert down + [mid] == pytest.approx(SOFT_WEIGHTS, rel=1e-12)
    assert shortcut == TimestepKeyframes(weights)
    assert ControlWeights(0.5, extras={"middle_mult": 0.3}).block_scales(3) == ([0.125, 0.25, 0.5], 0.3)


@pytest.fixture(scope="module")
def loaded(setup):  # noqa: F811
    executor, nets, folder, modules = setup
    ctx = context(Paths(folder.parent))
    tk = TimestepKeyframes(ControlWeights(0.825))
    return ctx, ControlNetLoaderAdvanced().run(ctx, "diffusers.safetensors", tk)[0], modules


def residuals(control):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=generator)
    embeds = torch.randn(2, 77, 32, generator=generator)
    ms = ModelSampling()
    with torch.no_grad():
        return control_residuals([control], x, torch.tensor(500.0), float(ms.sigma(500.0)), embeds, {}, ms)


def test_weights_and_mask_scale_each_residual(loaded):
    ctx, handle, modules = loaded
    assert handle.net.config.cross_attention_dim == 32, "the tiny SD1.x ControlNet: 32-wide cross-attention"
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    plain = residuals(AppliedControl(handle.net, "cn", hint, 0.7))
    down, mid = ControlWeights(0.825).block_scales(len(plain.down))
    weighted = residuals(WeightedControl(handle.net, "cn", hint, 0.7, block_scales=ControlWeights(0.825).block_scales))
    for ours, theirs, scale in zip(weighted.down, plain.down, down):
        assert torch.allclose(ours, theirs * scale, atol=1e-6)
    assert torch.allclose(weighted.mid, plain.mid * mid)
    mask = torch.zeros(1, 64, 64)
    mask[:, :, :32] = 1.0
    masked = residuals(WeightedControl(handle.net, "cn", hint, 0.7, mask=mask))
    for ours, theirs in zip([*masked.down, masked.mid], [*plain.down, plain.mid]):
        expected = theirs * F.interpolate(mask[:, None], size=theirs.shape[2:], mode="bilinear")
        assert torch.allclose(ours, expected, atol=1e-6)
    assert masked.down[0][..., :, -1].abs().max() == 0 and masked.down[0][..., :, 0].abs().max() > 0


def test_apply_shares_one_control_and_takes_the_weights_by_the_packs_precedence(loaded):
    ctx, handle, _ = loaded
    positive, negative = (CondEntry(torch.zeros(1, 77, 32)),), (CondEntry(torch.ones(1, 77, 32)),)
    image = torch.rand(1, 64, 64, 3)
    model = object()
    apply = ACNAdvancedControlNetApply()
    pos, neg, model_out = apply.run(ctx, positive, negative, handle, image, 0.5, 0.1, 0.9, model_optional=model)
    assert model_out is model and pos[0].control[0] is neg[0].control[0]
    control = pos[0].control[0]
    assert (control.strength, control.start_percent, control.end_percent) == (0.5, 0.1, 0.9)
    assert control.block_scales(2) == ControlWeights(0.825).block_scales(2)   # the loader's keyframe
    kf = TimestepKeyframes(ControlWeights(0.5))
    control = apply.run(ctx, positive, negative, handle, image, 1.0, 0.0, 1.0, timestep_kf=kf)[0][0].control[0]
    assert control.block_scales(2) == ([0.25, 0.5], 1.0)
    control = apply.run(ctx, positive, negative, handle, image, 1.0, 0.0, 1.0, timestep_kf=kf,
                        weights_override=ControlWeights(0.1))[0][0].control[0]
    assert control.block_scales(1) == ([0.1], 1.0)
    assert apply.run(ctx, positive, negative, handle, image, 0.0, 0.0, 1.0, model_optional=model) == (
        positive, negative, model)
    with pytest.raises(ValueError, match="uncond_multiplier 0.5"):
        apply.run(ctx, positive, negative, handle, image, 1.0, 0.0, 1.0, weights_override=ControlWeights(0.8, 0.5))


def test_loader_keeps_the_controlnet_and_its_keyframes(loaded):
    _, handle, _ = loaded
    assert isinstance(handle, AdvancedControlNetHandle) and handle.keyframes == TimestepKeyframes(ControlWeights(0.825))
    assert handle.source == "diffusers.safetensors"


def advanced_graph(weights: dict | None, mask: bool = False) -> dict:
    graph = base_graph()
    graph["cn"] = {"class_type": "ControlNetLoaderAdvanced", "inputs": {"control_net_name": "diffusers.safetensors"}}
    graph["hint"] = {"class_type": "TestHintImage", "inputs": {"seed": 5}}
    graph["apply"] = {"class_type": "ACN_AdvancedControlNetApply", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "control_net": ["cn", 0], "image": ["hint", 0],
        "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0, "model_optional": ["4", 0]}}
    if weights is not None:
        graph["weights"] = {"class_type": "ScaledSoftControlNetWeights", "inputs": weights}
        graph["apply"]["inputs"]["weights_override"] = ["weights", 0]
    if mask:
        graph["mask"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 64, "height": 64}}
        graph["apply"]["inputs"]["mask_optional"] = ["mask", 0]
    graph["3"]["inputs"].update(positive=["apply", 0], negative=["apply", 1], model=["apply", 2])
    return graph


@pytest.mark.slow
def test_ksampler_through_the_pack_nodes(setup):  # noqa: F811
    """Weights of 1 sample as "Apply ControlNet"; scaled-soft weights change the result; a zero mask removes
    the control."""
    executor, *_ = setup
    plain = base_graph()
    plain["cn"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "diffusers.safetensors"}}
    plain["hint"] = {"class_type": "TestHintImage", "inputs": {"seed": 5}}
    plain["apply"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "control_net": ["cn", 0], "image": ["hint", 0],
        "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}}
    plain["3"]["inputs"].update(positive=["apply", 0], negative=["apply", 1])
    latent = {name: run_ours(executor, graph)["latent"]["samples"] for name, graph in (
        ("plain", plain), ("uncontrolled", base_graph()),
        ("ones", advanced_graph({"base_multiplier": 1.0, "flip_weights": False})),
        ("soft", advanced_graph({"base_multiplier": 0.825, "flip_weights": False})),
        ("masked", advanced_graph(None, mask=True)))}
    assert torch.allclose(latent["ones"], latent["plain"], atol=1e-5)
    assert torch.allclose(latent["masked"], latent["uncontrolled"], atol=1e-5)
    assert (latent["soft"] - latent["plain"]).abs().max() > 1e-3
    assert (latent["soft"] - latent["uncontrolled"]).abs().max() > 1e-3
