"""ComfyUI_experiments' CFG functions through our denoiser, against the pack's formulas written out by hand:
`cond`/`uncond` are x minus each side's denoised prediction, and CFG gives x minus the function's result."""

import pytest
import torch

from engine.registry import NodeRegistry
from nodes.models.family import SD15
from nodes.models.handles import ModelHandle
from nodes.packs.comfy_experiments import (
    ExperimentalCfg,
    ModelSamplerTonemapNoiseTest,
    RescaleClassifierFreeGuidanceTest,
    TonemapNoiseWithRescaleCFG,
)
from nodes.sampling.cfg import unet_denoiser
from nodes.sampling.schedule import ModelSampling
from tests.nodes.test_model_sampling import FakeUNet, embeds, eps_predictions

X, SIGMA, CFG = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)), 3.0, 7.0


def reinhard_by_hand(cond, uncond, cond_scale, multiplier):
    """The pack's sampler_tonemap_reinhard, pixel by pixel where it can be."""
    out = torch.empty_like(cond)
    for b in range(cond.shape[0]):
        diff = cond[b] - uncond[b]
        magnitude = torch.sqrt((diff * diff).sum(dim=0)) + 1e-10          # [H, W]
        values = magnitude.flatten()
        top = (values.std() * 3 + values.mean()) * multiplier
        new = (magnitude / top) / (magnitude / top + 1.0) * top
        out[b] = uncond[b] + diff / magnitude * new * cond_scale
    return out


def rescale_by_hand(cond, x_cfg, multiplier):
    out = torch.empty_like(x_cfg)
    for b in range(cond.shape[0]):
        scaled = x_cfg[b] * (cond[b].flatten().std() / x_cfg[b].flatten().std())
        out[b] = multiplier * scaled + (1 - multiplier) * x_cfg[b]
    return out


def guided(term):
    denoiser = unet_denoiser(FakeUNet(), ModelSampling(), embeds(0.3), embeds(-0.2), CFG, (term,))
    return denoiser(X, torch.tensor(SIGMA))


def noise_predictions():
    cond_denoised, uncond_denoised = eps_predictions(X, SIGMA, 0.3, -0.2)
    return X - cond_denoised, X - uncond_denoised


@pytest.mark.parametrize("multiplier", [1.0, 0.5, 3.0])
def test_tonemap_follows_the_pack(multiplier):
    cond, uncond = noise_predictions()
    expected = X - reinhard_by_hand(cond, uncond, CFG, multiplier)
    torch.testing.assert_close(guided(ExperimentalCfg(tonemap=multiplier)), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("multiplier", [0.0, 0.7, 1.0])
def test_rescale_follows_the_pack(multiplier):
    cond, uncond = noise_predictions()
    expected = X - rescale_by_hand(cond, uncond + CFG * (cond - uncond), multiplier)
    torch.testing.assert_close(guided(ExperimentalCfg(rescale=multiplier)), expected, rtol=1e-4, atol=1e-4)


def test_tonemap_with_rescale_tonemaps_then_rescales():
    cond, uncond = noise_predictions()
    expected = X - rescale_by_hand(cond, reinhard_by_hand(cond, uncond, CFG, 2.0), 0.6)
    torch.testing.assert_close(guided(ExperimentalCfg(tonemap=2.0, rescale=0.6)), expected, rtol=1e-4, atol=1e-4)


def test_a_strong_guidance_is_compressed():
    plain = guided(ExperimentalCfg(rescale=0.0))
    tonemapped = guided(ExperimentalCfg(tonemap=1.0))
    assert (X - tonemapped).abs().mean() < (X - plain).abs().mean()


def test_the_nodes_set_their_cfg_function_on_the_model_before_other_post_cfg_terms():
    model = ModelHandle(FakeUNet(), SD15, ModelSampling(), "tiny", post_cfg=("pag",))
    nodes = [(ModelSamplerTonemapNoiseTest().run(None, model, 2.0), ExperimentalCfg(tonemap=2.0)),
             (RescaleClassifierFreeGuidanceTest().run(None, model, 0.7), ExperimentalCfg(rescale=0.7)),
             (TonemapNoiseWithRescaleCFG().run(None, model, 1.5, 0.5), ExperimentalCfg(tonemap=1.5, rescale=0.5))]
    for (patched,), term in nodes:
        assert patched.post_cfg == (term, "pag")


def test_inputs_as_the_pack_declares_them():
    registry = NodeRegistry()
    registry.load_package("nodes.packs")
    info = registry.object_info()
    assert info["ModelSamplerTonemapNoiseTest"]["input"]["required"]["multiplier"] == [
        "FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01}]
    assert info["RescaleClassifierFreeGuidanceTest"]["input"]["required"]["multiplier"] == [
        "FLOAT", {"default": 0.7, "min": 0.0, "max": 1.0, "step": 0.01}]
    assert list(info["TonemapNoiseWithRescaleCFG"]["input"]["required"]) == [
        "model", "tonemap_multiplier", "rescale_multiplier"]
    for name in ("ModelSamplerTonemapNoiseTest", "RescaleClassifierFreeGuidanceTest", "TonemapNoiseWithRescaleCFG"):
        assert info[name]["category"] == "custom_node_experiments"
        assert info[name]["output"] == ["MODEL"] and info[name]["output_name"] == ["MODEL"]


def test_reference_only_is_reported_as_the_packs_missing_node():
    from nodes.packs.known_packs import explain_missing_node

    assert explain_missing_node("ReferenceOnlySimple").startswith(
        "ComfyUI_experiments's ReferenceOnlySimple is not available in this engine")
