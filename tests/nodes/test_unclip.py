"""unCLIP: an SD2.1-unCLIP checkpoint loads with its image encoder and noise statistics; the image
embedding is noised as diffusers' StableUnCLIPImg2ImgPipeline (and ComfyUI) do; and a graph
unCLIPCheckpointLoader → CLIPVisionEncode → unCLIPConditioning → KSampler gives the pipeline's latent."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler, EulerDiscreteScheduler, StableUnCLIPImg2ImgPipeline
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

from engine.config import EngineConfig, build_registry
from engine.context import RunContext
from engine.declare import Out, node
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.types import IMAGE
from engine.workflow import Workflow
from nodes.models.unclip_loading import (
    SEED_OFFSET,
    ImageEmbeddingNoise,
    UnclipImage,
    UnclipModelHandle,
    unclip_input,
)
from nodes.sampling import ksampler_sigmas
from tests.nodes.test_reference_diffusers import (
    CFG,
    LINSPACE,
    NEGATIVE,
    POSITIVE,
    SD_SCHEDULE,
    SEED,
    SIZE,
    TOLERANCE,
    CaptureValue,
    captured,
    comfyui_start,
)
from tests.nodes.vision_models import UNCLIP_NAME, VISION_PROJECTION, save_tiny_unclip_checkpoint

STEPS = 4
NOISE_AUGMENTATION = 0.3  # noise level round(999 · 0.3) = 300


@node("TestPhoto", outputs=[Out(IMAGE)])
class TestPhoto:
    """A deterministic 48×40 image (not square, so the centre crop matters)."""

    def run(self, ctx: RunContext):
        return (torch.rand((1, 40, 48, 3), generator=torch.Generator().manual_seed(11)),)


def diffusers_noising(mean: torch.Tensor, std: torch.Tensor) -> SimpleNamespace:
    """What `StableUnCLIPImg2ImgPipeline.noise_image_embeddings` reads from the pipeline."""
    normalizer = StableUnCLIPImageNormalizer(mean.shape[1])
    with torch.no_grad():
        normalizer.mean.copy_(mean)
        normalizer.std.copy_(std)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    return SimpleNamespace(image_normalizer=normalizer, image_noising_scheduler=scheduler)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("unclip")
    path, modules, vision, mean, std = save_tiny_unclip_checkpoint(root / "models" / "checkpoints", seed=6)
    builtin = [d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]
    registry = NodeRegistry([CaptureValue, TestPhoto, *builtin])
    executor = Executor(registry, Paths(root / "models", root / "input", root / "output", root / "temp"))
    return executor, modules, vision, mean, std


@pytest.mark.parametrize("level", [0, 300, 999])
def test_noise_augmentation_equals_the_pipelines_noise_image_embeddings(level):
    generator = torch.Generator().manual_seed(1)
    mean, std = torch.randn(1, 16, generator=generator), torch.rand(1, 16, generator=generator) + 0.5
    embeds, noise = torch.randn(2, 16, generator=generator), torch.randn(2, 16, generator=generator)
    reference = StableUnCLIPImg2ImgPipeline.noise_image_embeddings(diffusers_noising(mean, std), embeds, level,
                                                                   noise=noise)
    ours = ImageEmbeddingNoise(mean, std)(embeds, level, noise)
    assert ours.shape == (2, 32)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_the_negative_side_gets_zeros_and_strength_scales_the_whole_input():
    noise = ImageEmbeddingNoise(torch.zeros(1, 4), torch.ones(1, 4))
    assert torch.equal(unclip_input((), noise, 5), torch.zeros(1, 8))
    embeds = torch.arange(4.0).reshape(1, 4)
    once = unclip_input((UnclipImage(embeds, 1.0, 0.0),), noise, 5)
    # level 0 still adds a little of the seeded noise (ᾱ₀ < 1); its embedding is cos(0), sin(0)
    assert torch.allclose(once, noise(embeds, 0, torch.randn((1, 4), generator=torch.Generator().manual_seed(5))))
    assert torch.allclose(once[:, :4], embeds, atol=0.02) and torch.equal(once[:, 4:], torch.tensor([[1.0, 1, 0, 0]]))
    assert torch.allclose(unclip_input((UnclipImage(embeds, -2.0, 0.0),), noise, 5), -2.0 * once)


def test_several_images_are_summed_then_noised_once_more_at_the_merge_level():
    noise = ImageEmbeddingNoise(torch.zeros(1, 4), torch.ones(1, 4))
    a, b = torch.ones(1, 4), torch.full((1, 4), 2.0)
    merged = unclip_input((UnclipImage(a, 1.0, 0.0), UnclipImage(b, 0.5, 0.3)), noise, 7)

    def seeded():
        return torch.randn((1, 4), generator=torch.Generator().manual_seed(7))

    summed = noise(a, 0, seeded()) + 0.5 * noise(b, 300, seeded())  # then re-noised at round(999 · 0.05) = 50
    expected = noise(summed[:, :4], 50, seeded())
    assert torch.allclose(merged, expected)


def graph(strength: float = 1.0) -> dict:
    return {
        "4": {"class_type": "unCLIPCheckpointLoader", "inputs": {"ckpt_name": UNCLIP_NAME}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "img": {"class_type": "TestPhoto", "inputs": {}},
        "enc": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["4", 3], "image": ["img", 0],
                                                             "crop": "center"}},
        "un": {"class_type": "unCLIPConditioning", "inputs": {
            "conditioning": ["6", 0], "clip_vision_output": ["enc", 0], "strength": strength,
            "noise_augmentation": NOISE_AUGMENTATION}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["un", 0], "negative": ["7", 0], "latent_image": ["5", 0],
            "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "capture_model": {"class_type": "CaptureValue", "inputs": {"value": ["4", 0]}},
        "capture_clip": {"class_type": "CaptureValue", "inputs": {"value": ["4", 1]}},
        "capture_vae": {"class_type": "CaptureValue", "inputs": {"value": ["4", 2]}},
        "capture_vision": {"class_type": "CaptureValue", "inputs": {"value": ["4", 3]}},
        "capture_encoded": {"class_type": "CaptureValue", "inputs": {"value": ["enc", 0]}},
        "capture_positive": {"class_type": "CaptureValue", "inputs": {"value": ["6", 0]}},
        "capture_negative": {"class_type": "CaptureValue", "inputs": {"value": ["7", 0]}},
        "capture_latent": {"class_type": "CaptureValue", "inputs": {"value": ["3", 0]}},
        "capture_image": {"class_type": "CaptureValue", "inputs": {"value": ["8", 0]}},
    }


def run_ours(executor: Executor, strength: float = 1.0) -> dict:
    captured.clear()
    result = executor.execute(Workflow.from_api(graph(strength)))
    assert result.status == "success", result.error
    return {k.removeprefix("capture_"): v for k, v in captured.items()}


def test_the_checkpoint_loads_its_unet_image_input_encoder_and_statistics(setup):
    executor, modules, vision, mean, std = setup
    ours = run_ours(executor)
    model = ours["model"]
    assert isinstance(model, UnclipModelHandle) and model.unet.config.class_embed_type == "projection"
    assert model.family.config_dir == "sd2"
    for key, value in modules["unet"].state_dict().items():
        assert torch.equal(model.unet.state_dict()[key], value), key
    for key, value in vision.state_dict().items():
        assert torch.equal(ours["vision"].model.state_dict()[key], value), key
    assert torch.equal(model.image_noise.mean, mean) and torch.equal(model.image_noise.std, std)
    assert ours["encoded"].image_embeds.shape == (1, VISION_PROJECTION)
    assert ours["image"].shape == (1, SIZE, SIZE, 3)


def test_an_unclip_graph_gives_the_latent_of_the_stable_unclip_pipeline(setup):
    executor, _, _, mean, std = setup
    ours = run_ours(executor)
    model, clip, vae, vision = ours["model"], ours["clip"], ours["vae"], ours["vision"]
    sigmas = ksampler_sigmas(model.model_sampling, "normal", STEPS)
    noise = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED))
    start = comfyui_start(noise, float(sigmas[0]), model.model_sampling.sigma_max)
    scheduler = EulerDiscreteScheduler(**dict(SD_SCHEDULE, prediction_type=model.model_sampling.prediction), **LINSPACE)
    noising = diffusers_noising(mean, std)
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=None, image_encoder=vision.model, image_normalizer=noising.image_normalizer,
        image_noising_scheduler=noising.image_noising_scheduler, tokenizer=clip.tokenizers[0],
        text_encoder=clip.text_encoders[0], unet=model.unet, scheduler=scheduler, vae=vae.vae)
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(prompt_embeds=ours["positive"][0].embeds, negative_prompt_embeds=ours["negative"][0].embeds,
                     image_embeds=ours["encoded"].image_embeds, noise_level=round(999 * NOISE_AUGMENTATION),
                     height=SIZE, width=SIZE, guidance_scale=CFG, num_inference_steps=STEPS,
                     latents=start, output_type="latent",  # (given latents are used unscaled here)
                     generator=torch.Generator().manual_seed(SEED + SEED_OFFSET)).images
    difference = float((ours["latent"]["samples"] * model.latent_scale - reference).abs().max())
    assert difference < TOLERANCE
    plain = run_ours(executor, strength=0.0)  # strength 0 leaves the conditioning as it was: zeros as image input
    assert float((plain["latent"]["samples"] - ours["latent"]["samples"]).abs().max()) > 10 * TOLERANCE
