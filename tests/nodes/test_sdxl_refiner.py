"""SDXL refiner checkpoints (`sd_xl_refiner_1.0` layout: OpenCLIP bigG alone, a 2560-wide added
embedding of pooled prompt + 5 size/aesthetic ids) load from a single file, sample as diffusers'
`StableDiffusionXLImg2ImgPipeline` does on the same weights, and take over from the base model in
ComfyUI's base → refiner template.
"""

from __future__ import annotations

import pytest
import torch
import yaml
from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.workflow import Workflow
from nodes.models.checkpoint import load_checkpoint
from nodes.models.family import SDXL_BASE, SDXL_REFINER, SDXL_REFINER_PREFIX, detect_family
from nodes.models.ldm_convert import configs_for_checkpoint
from nodes.models.shipped_configs import shipped_configs
from tests.nodes import test_reference_diffusers as reference
from tests.nodes.checkpoints import full_size_ldm_shapes, save_tiny_checkpoint, state_dicts_equal
from tests.nodes.test_comfy_workflows import load, shrink
from tests.nodes.test_reference_diffusers import (  # noqa: F401  (hub_offline: an autouse fixture)
    CFG,
    SEED,
    SIZE,
    TOLERANCE,
    CaptureValue,
    Pair,
    TestGradientImage,
    assert_same_schedule,
    diffusers_sigmas,
    hub_offline,
    make_scheduler,
    schedule_kwargs,
)

POSITIVE, NEGATIVE = "a glass bottle with a galaxy in it", "text, watermark"
REFINER = "tiny-sdxl-refiner.safetensors"
BASE = "tiny-sdxl.safetensors"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("refiner")
    (root / "checkpoints").mkdir()
    _, refiner_modules = save_tiny_checkpoint(root / "checkpoints", SDXL_REFINER, seed=5, name="tiny-sdxl-refiner")
    save_tiny_checkpoint(root / "checkpoints", SDXL_BASE, seed=3, name="tiny-sdxl")
    return root, refiner_modules


@pytest.fixture(scope="module")
def executor(models):
    root, _ = models
    registry = NodeRegistry([CaptureValue, TestGradientImage,
                             *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    return Executor(registry, Paths(root, root.parent / "input", root.parent / "output", root.parent / "temp"))


# --- the file layout -----------------------------------------------------------------------------

def test_a_full_size_refiner_is_recognised_and_yields_the_shipped_config():
    shapes = {k: tuple(v.shape) for k, v in full_size_ldm_shapes(SDXL_REFINER).items()}
    assert any(k.startswith(SDXL_REFINER_PREFIX) for k in shapes)
    assert not any(k.startswith("conditioner.embedders.1.") for k in shapes)
    assert shapes["model.diffusion_model.label_emb.0.0.weight"] == (1536, 2560)
    assert detect_family(shapes) == SDXL_REFINER
    configs = configs_for_checkpoint(shapes, SDXL_REFINER)
    shipped = shipped_configs(SDXL_REFINER)
    assert configs.unet == shipped.unet
    assert configs.text_encoders == shipped.text_encoders
    assert list(configs.text_encoders) == ["text_encoder_2"]


def test_a_tiny_refiner_file_loads_every_weight_it_was_made_from(models):
    root, modules = models
    loaded = load_checkpoint(root / "checkpoints" / REFINER)
    assert loaded.family == SDXL_REFINER and loaded.family.is_sdxl
    assert state_dicts_equal(loaded.unet, modules["unet"])
    assert state_dicts_equal(loaded.vae, modules["vae"])
    assert [state_dicts_equal(e, modules["text_encoder_2"]) for e in loaded.text_encoders] == [True]
    assert [t.pad_token_id for t in loaded.tokenizers] == [0]  # OpenCLIP pads with "!"
    assert loaded.vae_scaling_factor == 0.13025
    # The middle block attends though the last level does not: the refiner's layout.
    assert loaded.unet.config.down_block_types[-1] == "DownBlock2D"
    assert loaded.unet.mid_block.attentions[0] is not None


# --- against diffusers ---------------------------------------------------------------------------

def refiner_workflow(pair: Pair, denoise: float) -> Workflow:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": REFINER}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "10": {"class_type": "TestGradientImage", "inputs": {}},
        "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": SEED, "steps": pair.steps, "cfg": CFG, "sampler_name": pair.sampler,
            "scheduler": pair.scheduler, "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["11", 0],
            "denoise": denoise}},
    }
    for name, source in {"model": ["4", 0], "clip": ["4", 1], "vae": ["4", 2], "positive": ["6", 0],
                         "negative": ["7", 0], "latent": ["3", 0], "init": ["11", 0]}.items():
        graph[f"capture_{name}"] = {"class_type": "CaptureValue", "inputs": {"value": source}}
    return Workflow.from_api(graph)


def run_refiner(executor, pair: Pair, denoise: float) -> dict:
    reference.captured.clear()
    result = executor.execute(refiner_workflow(pair, denoise))
    assert result.status == "success", result.error
    return {k.removeprefix("capture_"): v for k, v in reference.captured.items()}


def img2img_pipeline(ours: dict, scheduler) -> StableDiffusionXLImg2ImgPipeline:
    clip = ours["clip"]
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=ours["vae"].vae, text_encoder=None, text_encoder_2=clip.text_encoders[0], tokenizer=None,
        tokenizer_2=clip.tokenizers[0], unet=ours["model"].unet, scheduler=scheduler,
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_refiner_prompts_equal_the_pipelines_own(executor):
    ours = run_refiner(executor, reference.IMG2IMG[0][0], 0.5)
    pipe = img2img_pipeline(ours, EulerDiscreteScheduler(**reference.SD_SCHEDULE))
    positive, negative, pooled, negative_pooled = pipe.encode_prompt(POSITIVE, device="cpu", negative_prompt=NEGATIVE)
    assert torch.equal(ours["positive"][0].embeds, positive)
    assert torch.equal(ours["negative"][0].embeds, negative)
    assert torch.equal(ours["positive"][0].pooled, pooled)
    assert torch.equal(ours["negative"][0].pooled, negative_pooled)


@pytest.mark.parametrize("pair, denoise", [reference.IMG2IMG[0],
                                           pytest.param(*reference.IMG2IMG[4], marks=pytest.mark.slow)],
                         ids=lambda v: str(v) if isinstance(v, Pair) else f"d{v}")
def test_refiner_img2img_latent_equals_the_sdxl_img2img_pipelines(executor, pair, denoise):
    """Aesthetic scores 6 (positive) and 2.5 (negative) and the latent's size: both sides' defaults."""
    ours = run_refiner(executor, pair, denoise)
    model = ours["model"]
    total = int(pair.steps / denoise)
    full = reference.ksampler_sigmas(model.model_sampling, pair.scheduler, total)
    kwargs = schedule_kwargs(pair, full, model.model_sampling)
    probe = make_scheduler(pair)
    probe.set_timesteps(**kwargs)
    assert_same_schedule(pair, diffusers_sigmas(probe), full)
    assert int(total * denoise) == pair.steps

    pipe = img2img_pipeline(ours, make_scheduler(pair))
    positive, negative = ours["positive"][0], ours["negative"][0]
    latent = pipe(prompt_embeds=positive.embeds, negative_prompt_embeds=negative.embeds,
                  pooled_prompt_embeds=positive.pooled, negative_pooled_prompt_embeds=negative.pooled,
                  image=ours["init"]["samples"] * model.latent_scale, strength=denoise, guidance_scale=CFG,
                  generator=torch.Generator().manual_seed(SEED), output_type="latent", **kwargs).images
    got = ours["latent"]["samples"] * model.latent_scale
    assert got.shape == latent.shape
    assert float((got - latent).abs().max()) < TOLERANCE

    # The aesthetic scores matter: the pipeline with other ones lands elsewhere.
    other = pipe(prompt_embeds=positive.embeds, negative_prompt_embeds=negative.embeds,
                 pooled_prompt_embeds=positive.pooled, negative_pooled_prompt_embeds=negative.pooled,
                 image=ours["init"]["samples"] * model.latent_scale, strength=denoise, guidance_scale=CFG,
                 aesthetic_score=2.5, negative_aesthetic_score=6.0,
                 generator=torch.Generator().manual_seed(SEED), output_type="latent", **kwargs).images
    assert float((got - other).abs().max()) > 3 * TOLERANCE  # so the comparison above can tell them apart


# --- base → refiner --------------------------------------------------------------------------------

def handover_workflow(refiner_prompts: str) -> dict:
    """ComfyUI's template: the base samples steps 0-3 of 4 and hands its noisy latent to the refiner."""
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": BASE}},
        "12": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": REFINER}},
        "6": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
            "width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024,
            "text_g": POSITIVE, "clip": ["4", 1], "text_l": POSITIVE}},
        "7": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
            "width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024,
            "text_g": NEGATIVE, "clip": ["4", 1], "text_l": NEGATIVE}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "10": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["4", 0], "add_noise": "enable", "noise_seed": SEED, "steps": 4, "cfg": CFG,
            "sampler_name": "euler", "scheduler": "normal", "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0], "start_at_step": 0, "end_at_step": 3, "return_with_leftover_noise": "enable"}},
        "11": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["12", 0], "add_noise": "disable", "noise_seed": 0, "steps": 4, "cfg": CFG,
            "sampler_name": "euler", "scheduler": "normal", "positive": ["15", 0], "negative": ["16", 0],
            "latent_image": ["10", 0], "start_at_step": 3, "end_at_step": 10000,
            "return_with_leftover_noise": "disable"}},
        "17": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["12", 2]}},
        "capture_base": {"class_type": "CaptureValue", "inputs": {"value": ["10", 0]}},
        "capture_refined": {"class_type": "CaptureValue", "inputs": {"value": ["11", 0]}},
        "capture_image": {"class_type": "CaptureValue", "inputs": {"value": ["17", 0]}},
    }
    if refiner_prompts == "refiner":
        graph["15"] = {"class_type": "CLIPTextEncodeSDXLRefiner", "inputs": {
            "ascore": 6.0, "width": 1024, "height": 1024, "text": POSITIVE, "clip": ["12", 1]}}
        graph["16"] = {"class_type": "CLIPTextEncodeSDXLRefiner", "inputs": {
            "ascore": 2.5, "width": 1024, "height": 1024, "text": NEGATIVE, "clip": ["12", 1]}}
    else:
        graph["15"] = {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": ["12", 1]}}
        graph["16"] = {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["12", 1]}}
    return graph


@pytest.mark.parametrize("refiner_prompts, time_ids", [
    ("refiner", [[1024, 1024, 0, 0, 6.0], [1024, 1024, 0, 0, 2.5]]),
    pytest.param("plain", [[SIZE, SIZE, 0, 0, 6.0], [SIZE, SIZE, 0, 0, 2.5]],  # defaults: latent size, 6 / 2.5
                 marks=pytest.mark.slow),
])
def test_base_hands_over_to_the_refiner(executor, refiner_prompts, time_ids):
    """The refiner runs the last step only, from the base's noisy latent, with its own size ids."""
    graph = handover_workflow(refiner_prompts)
    graph["capture_refiner"] = {"class_type": "CaptureValue", "inputs": {"value": ["12", 0]}}
    reference.captured.clear()
    assert executor.execute(Workflow.from_api(graph)).status == "success"
    refiner_unet = reference.captured["capture_refiner"].unet
    calls = []
    hook = refiner_unet.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((args, kwargs)), with_kwargs=True)
    try:
        graph["11"]["inputs"]["noise_seed"] = 1  # re-runs the refiner's sampler only (add_noise is disabled)
        reference.captured.clear()
        result = executor.execute(Workflow.from_api(graph))
    finally:
        hook.remove()
    assert result.status == "success", result.error
    base, refined = reference.captured["capture_base"]["samples"], reference.captured["capture_refined"]["samples"]
    image = reference.captured["capture_image"]
    assert base.shape == refined.shape == (1, 4, SIZE // 8, SIZE // 8)
    assert image.shape == (1, SIZE, SIZE, 3) and torch.isfinite(image).all()
    assert not torch.allclose(base, refined)
    assert len(calls) == 1, "one euler step: step 3 of 4, positive and negative in one batch"
    args, kwargs = calls[0]
    assert kwargs["added_cond_kwargs"]["time_ids"].tolist() == time_ids
    assert kwargs["added_cond_kwargs"]["text_embeds"].shape == (2, 32)


@pytest.mark.slow  # two models, seven nodes that run: ~15 s here
def test_comfyuis_refiner_template_runs_with_a_refiner_checkpoint(executor, models):
    """tests/fixtures/comfy_workflows/sdxl_simple_example.json unedited, its two checkpoints by alias."""
    root, _ = models
    aliases = {"checkpoints": {"sd_xl_base_1.0.safetensors": BASE, "sd_xl_refiner_1.0.safetensors": REFINER}}
    (root / "aliases.yaml").write_text(yaml.safe_dump(aliases))
    try:
        workflow = shrink(load("sdxl_simple_example.json", executor.registry), executor.registry,
                          factor=1 / 16, max_steps=4)
        graph = workflow.to_api()
        loaders = sorted(n["inputs"]["ckpt_name"] for n in graph.values()
                         if n["class_type"] == "CheckpointLoaderSimple")
        assert loaders == ["sd_xl_base_1.0.safetensors", "sd_xl_refiner_1.0.safetensors"]
        validation = executor.validate(workflow)
        assert validation.ok, validation.response()
        result = executor.execute(workflow)
        assert result.status == "success", result.error
    finally:
        (root / "aliases.yaml").unlink()
