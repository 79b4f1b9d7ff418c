"""Custom sampling: NOISE + GUIDER + SAMPLER + SIGMAS graphs give exactly what the equivalent KSampler gives."""

from __future__ import annotations

import pytest
import torch

from engine.config import EngineConfig, build_registry
from engine.context import RunContext
from engine.declare import NodeResult, node
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.types import ANY, Link
from engine.workflow import Workflow
from nodes.sampler_select import FlipSigmas, SplitSigmas, SplitSigmasDenoise
from nodes.sampling import ModelSampling, ksampler_sigmas

SEED, STEPS, CFG = 42, 3, 5.0
captured: dict[str, object] = {}


@node("CaptureById", output_node=True, always_rerun=True)
class CaptureById:
    """Hands what reaches it to the test, keyed by node id."""

    value = Link(ANY)

    def run(self, ctx: RunContext, value):
        captured[ctx.node_id] = value
        return NodeResult(ui={})


@pytest.fixture(scope="module")
def executor(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("custom")
    registry = NodeRegistry([CaptureById, *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    return Executor(registry, Paths(models_dir, root / "input", root / "output", root / "temp"))


def base_graph() -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
    }


def run(executor, graph: dict, *keys: str) -> list:
    captured.clear()
    for key in keys:
        graph[f"c{key}"] = {"class_type": "CaptureById", "inputs": {"value": [key, 0]}}
    result = executor.execute(Workflow.from_api(graph))
    assert result.status == "success", result.error
    return [captured[f"c{key}"] for key in keys]


def ksampler(sampler: str, scheduler: str, cfg: float = CFG) -> dict:
    return {"class_type": "KSampler", "inputs": {
        "model": ["4", 0], "seed": SEED, "steps": STEPS, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler,
        "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0}}


@pytest.mark.parametrize("sampler, scheduler", [("euler", "normal"), ("euler_ancestral", "karras"),
                                                ("dpmpp_2m_sde", "karras"), ("lcm", "sgm_uniform")])
def test_sampler_custom_and_advanced_equal_ksampler(executor, sampler, scheduler):
    graph = base_graph()
    graph["3"] = ksampler(sampler, scheduler)
    graph["20"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler}}
    graph["21"] = {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": scheduler,
                                                             "steps": STEPS, "denoise": 1.0}}
    graph["22"] = {"class_type": "SamplerCustom", "inputs": {
        "model": ["4", 0], "add_noise": True, "noise_seed": SEED, "cfg": CFG, "positive": ["6", 0],
        "negative": ["7", 0], "sampler": ["20", 0], "sigmas": ["21", 0], "latent_image": ["5", 0]}}
    graph["23"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}}
    graph["24"] = {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["6", 0],
                                                        "negative": ["7", 0], "cfg": CFG}}
    graph["25"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["23", 0], "guider": ["24", 0], "sampler": ["20", 0], "sigmas": ["21", 0],
        "latent_image": ["5", 0]}}
    reference, custom, advanced = run(executor, graph, "3", "22", "25")
    assert torch.equal(custom["samples"], reference["samples"])
    assert torch.equal(advanced["samples"], reference["samples"])


def test_sampler_nodes_with_default_options_equal_ksampler(executor):
    graph = base_graph()
    graph["3"] = ksampler("dpmpp_sde", "karras")
    graph["20"] = {"class_type": "SamplerDPMPP_SDE", "inputs": {"eta": 1.0, "s_noise": 1.0, "r": 0.5,
                                                               "noise_device": "cpu"}}
    graph["21"] = {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "karras",
                                                             "steps": STEPS, "denoise": 1.0}}
    graph["22"] = {"class_type": "SamplerCustom", "inputs": {
        "model": ["4", 0], "add_noise": True, "noise_seed": SEED, "cfg": CFG, "positive": ["6", 0],
        "negative": ["7", 0], "sampler": ["20", 0], "sigmas": ["21", 0], "latent_image": ["5", 0]}}
    reference, custom = run(executor, graph, "3", "22")
    assert torch.equal(custom["samples"], reference["samples"])


def test_karras_scheduler_defaults_are_the_sd_tables_ends_rounded():
    from nodes.sampler_select import KarrasScheduler

    (sigmas,) = KarrasScheduler().run(None, 10, 14.614642, 0.0291675, 7.0)
    assert torch.allclose(sigmas, ksampler_sigmas(ModelSampling(), "karras", 10), rtol=1e-4)


def test_basic_guider_is_ksampler_at_cfg_one(executor):
    graph = base_graph()
    graph["3"] = ksampler("euler", "sgm_uniform", cfg=1.0)
    graph["20"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    graph["21"] = {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "sgm_uniform",
                                                             "steps": STEPS, "denoise": 1.0}}
    graph["23"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}}
    graph["24"] = {"class_type": "BasicGuider", "inputs": {"model": ["4", 0], "conditioning": ["6", 0]}}
    graph["25"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["23", 0], "guider": ["24", 0], "sampler": ["20", 0], "sigmas": ["21", 0],
        "latent_image": ["5", 0]}}
    reference, advanced = run(executor, graph, "3", "25")
    assert torch.equal(advanced["samples"], reference["samples"])


def test_split_sigmas_chain_equals_the_whole_run(executor):
    """High sigmas with noise, then low sigmas from the leftover latent with DisableNoise: one KSampler run."""
    graph = base_graph()
    graph["3"] = ksampler("euler", "karras")
    graph["20"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    graph["21"] = {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "karras",
                                                             "steps": STEPS, "denoise": 1.0}}
    graph["26"] = {"class_type": "SplitSigmas", "inputs": {"sigmas": ["21", 0], "step": 1}}
    graph["23"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}}
    graph["27"] = {"class_type": "DisableNoise", "inputs": {}}
    graph["24"] = {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["6", 0],
                                                        "negative": ["7", 0], "cfg": CFG}}
    graph["28"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["23", 0], "guider": ["24", 0], "sampler": ["20", 0], "sigmas": ["26", 0], "latent_image": ["5", 0]}}
    graph["29"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["27", 0], "guider": ["24", 0], "sampler": ["20", 0], "sigmas": ["26", 1], "latent_image": ["28", 0]}}
    reference, chained = run(executor, graph, "3", "29")
    assert torch.allclose(chained["samples"], reference["samples"], atol=1e-5)


def test_sigma_surgery_follows_comfyui():
    sigmas = ksampler_sigmas(ModelSampling(), "normal", 4)
    high, low = SplitSigmas().run(None, sigmas, 1)
    assert torch.equal(high, sigmas[:2]) and torch.equal(low, sigmas[1:])
    high, low = SplitSigmasDenoise().run(None, sigmas, 0.5)
    assert torch.equal(high, sigmas[:3]) and torch.equal(low, sigmas[2:])
    (flipped,) = FlipSigmas().run(None, sigmas)
    assert float(flipped[0]) == pytest.approx(1e-4) and torch.equal(flipped[1:], sigmas.flip(0)[1:])


@pytest.mark.parametrize("style", ["regular", "nested"])
def test_dual_cfg_guider_with_equal_prompts_is_cfg_guider(executor, style):
    graph = base_graph()
    graph["20"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    graph["21"] = {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "normal",
                                                             "steps": STEPS, "denoise": 1.0}}
    graph["23"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}}
    graph["24"] = {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["6", 0],
                                                        "negative": ["7", 0], "cfg": CFG}}
    graph["30"] = {"class_type": "DualCFGGuider", "inputs": {
        "model": ["4", 0], "cond1": ["6", 0], "cond2": ["6", 0], "negative": ["7", 0], "cfg_conds": 3.0,
        "cfg_cond2_negative": CFG, "style": style}}
    for key, guider in (("25", "24"), ("31", "30")):
        graph[key] = {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["23", 0], "guider": [guider, 0], "sampler": ["20", 0], "sigmas": ["21", 0],
            "latent_image": ["5", 0]}}
    reference, dual = run(executor, graph, "25", "31")
    torch.testing.assert_close(dual["samples"], reference["samples"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("nested", [False, True])
def test_dual_cfg_follows_comfyuis_formulas(nested):
    from nodes.sampling.cfg import Cond
    from nodes.sampling.dual_cfg import DualCfgDenoiser
    from tests.nodes.test_model_sampling import FakeUNet, embeds, eps_predictions

    x, sigma, cfg1, cfg2 = torch.randn(1, 4, 8, 8), 2.0, 3.0, 6.0
    denoiser = DualCfgDenoiser(FakeUNet(), ModelSampling(), Cond(embeds(0.4)), Cond(embeds(0.1)),
                               Cond(embeds(-0.3)), cfg1, cfg2, nested)
    positive, middle, negative = eps_predictions(x, sigma, 0.4, 0.1, -0.3)
    if nested:
        expected = negative + cfg2 * (middle + (positive - middle) * cfg1 - negative)
    else:
        expected = negative + (middle - negative) * cfg2 + (positive - middle) * cfg1
    torch.testing.assert_close(denoiser(x, torch.tensor(sigma)), expected, rtol=1e-5, atol=1e-5)


def test_dual_cfg_at_scale_one_skips_the_sides_it_does_not_need():
    from nodes.sampling.cfg import Cond
    from nodes.sampling.dual_cfg import DualCfgDenoiser
    from tests.nodes.test_model_sampling import FakeUNet, embeds

    sides = (Cond(embeds(0.4)), Cond(embeds(0.1)), Cond(embeds(-0.3)))
    assert DualCfgDenoiser(FakeUNet(), ModelSampling(), *sides, 3.0, 1.0, False).names == ["middle", "positive"]
    assert DualCfgDenoiser(FakeUNet(), ModelSampling(), *sides, 1.0, 1.0, False).names == ["positive"]
    assert len(DualCfgDenoiser(FakeUNet(), ModelSampling(), *sides, 1.0, 1.0, True).names) == 3


def test_align_your_steps_follows_nvidias_table():
    from nodes.sampler_select import AYS_NOISE_LEVELS, AlignYourStepsScheduler

    (ten,) = AlignYourStepsScheduler().run(None, "SD1", 10, 1.0)
    assert ten.dtype == torch.float32 and float(ten[-1]) == 0.0
    torch.testing.assert_close(ten[:-1], torch.tensor(AYS_NOISE_LEVELS["SD1"][:-1]))
    (twenty,) = AlignYourStepsScheduler().run(None, "SDXL", 20, 1.0)
    assert len(twenty) == 21 and float(twenty[0]) == pytest.approx(14.6146412293)
    # Every other point of a 20-step schedule is a table point (log-linear interpolation between them).
    torch.testing.assert_close(twenty[2:-1:2], torch.tensor(AYS_NOISE_LEVELS["SDXL"][1:-1]))
    assert float(twenty[1]) == pytest.approx((14.6146412293 * 6.3184485287) ** 0.5, rel=1e-5)
    (half,) = AlignYourStepsScheduler().run(None, "SD1", 10, 0.5)
    torch.testing.assert_close(half[:-1], ten[5:-1]) and float(half[-1]) == 0.0
    (none,) = AlignYourStepsScheduler().run(None, "SD1", 10, 0.0)
    assert len(none) == 0


def test_lcm_upscale_grows_the_latent_over_the_first_steps(executor):
    from nodes.sampling.lcm_upscale import upscale_factors

    assert upscale_factors(4, 2.0, None) == [1.5, 2.0]  # ComfyUI: len(sigmas) // 2 + 1 points from 1
    assert upscale_factors(4, 3.0, 1) == [3.0]
    assert upscale_factors(2, 2.0, 10) == pytest.approx([4 / 3, 5 / 3, 2.0])  # at most len(sigmas) + 1 points
    graph = base_graph()
    graph["20"] = {"class_type": "SamplerLCMUpscale", "inputs": {"scale_ratio": 1.5, "scale_steps": -1,
                                                                "upscale_method": "bislerp"}}
    graph["21"] = {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "sgm_uniform",
                                                             "steps": STEPS, "denoise": 1.0}}
    graph["22"] = {"class_type": "SamplerCustom", "inputs": {
        "model": ["4", 0], "add_noise": True, "noise_seed": SEED, "cfg": 1.0, "positive": ["6", 0],
        "negative": ["7", 0], "sampler": ["20", 0], "sigmas": ["21", 0], "latent_image": ["5", 0]}}
    (out,) = run(executor, graph, "22")
    assert out["samples"].shape == (1, 4, 6, 6) and torch.isfinite(out["samples"]).all()


def test_lcm_upscale_draws_comfyuis_noise_after_the_starting_noise():
    from nodes.sampling.lcm_upscale import lcm_upscale

    sigmas, x = torch.tensor([3.0, 1.0, 0.0]), torch.randn(1, 4, 4, 4)
    generator = torch.Generator().manual_seed(7)
    torch.randn((1, 4, 4, 4), generator=generator)
    expected = 0.5 * (0.5 * x + 1.0 * torch.randn((1, 4, 4, 4), generator=generator))
    out = lcm_upscale(lambda x, s: 0.5 * x, x, sigmas, 7, lambda *a: None, total_upscale=1.0)
    torch.testing.assert_close(out, expected)


def with_model_patch(graph: dict, class_type: str, **inputs) -> dict:
    """The graph's KSampler ("3") sampling through a MODEL node ("40") on the checkpoint's model."""
    graph["40"] = {"class_type": class_type, "inputs": {"model": ["4", 0], **inputs}}
    graph["3"]["inputs"]["model"] = ["40", 0]
    return graph


def test_lcm_sampling_runs_the_distilled_schedule_with_the_lcm_denoiser(executor):
    graph = base_graph()
    graph["3"] = ksampler("lcm", "sgm_uniform", cfg=1.5)
    graph["41"] = ksampler("lcm", "sgm_uniform", cfg=1.5)
    graph["42"] = {"class_type": "BasicScheduler", "inputs": {"model": ["40", 0], "scheduler": "sgm_uniform",
                                                             "steps": 4, "denoise": 1.0}}
    (lcm, eps, sigmas) = run(executor, with_model_patch(graph, "ModelSamplingDiscrete", sampling="lcm", zsnr=False),
                             "3", "41", "42")
    assert torch.isfinite(lcm["samples"]).all() and not torch.allclose(lcm["samples"], eps["samples"])
    from nodes.sampling.schedule import model_sampling_for

    assert torch.equal(sigmas, ksampler_sigmas(model_sampling_for("lcm"), "sgm_uniform", 4))
    assert not torch.allclose(sigmas, ksampler_sigmas(ModelSampling(), "sgm_uniform", 4))


def test_rescale_cfg_at_multiplier_zero_is_plain_cfg_and_cfg_zero_star_changes_the_image(executor):
    graph = base_graph()
    graph["41"] = ksampler("euler", "normal")
    graph["3"] = ksampler("euler", "normal")
    plain, rescaled = run(executor, with_model_patch(graph, "RescaleCFG", multiplier=0.0), "41", "3")
    torch.testing.assert_close(rescaled["samples"], plain["samples"], rtol=1e-4, atol=1e-4)
    graph["3"] = ksampler("euler", "normal")
    (zero_star,) = run(executor, with_model_patch(graph, "CFGZeroStar"), "3")
    assert torch.isfinite(zero_star["samples"]).all() and not torch.allclose(zero_star["samples"], plain["samples"])
