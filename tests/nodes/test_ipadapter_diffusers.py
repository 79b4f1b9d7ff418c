"""IP-Adapter against diffusers' `load_ip_adapter` (IPAdapterAttnProcessor2_0 and its image projection)
on the same tiny random weights, text embeddings, reference image and starting noise.

Both sides run the same Euler loop with CFG; only the UNet call differs: ours is the tiny UNet with
our IPAdapterAdvanced's hook attached, diffusers' is a copy of it after `pipe.load_ip_adapter` from a
local folder, called with `added_cond_kwargs={"image_embeds": [negative, positive]}`. Both get the same
CLIP pixels. The negative image embedding is the pack's (zeros for base, a black image's hidden states
for plus: diffusers would encode all-zero pixels instead), handed to diffusers as its negative.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is downloaded: everything is built here

from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline  # noqa: E402

from nodes.models.clip_vision_loading import load_clip_vision, preprocess  # noqa: E402
from nodes.models.family import SD15, SDXL_BASE  # noqa: E402
from nodes.models.handles import ModelHandle  # noqa: E402
from nodes.models.patching import model_patches_applied  # noqa: E402
from nodes.models.tiny import tiny_modules  # noqa: E402
from nodes.packs.ipadapter_plus import IPAdapterAdvanced, IPAdapterModelLoader, uncond_embeds  # noqa: E402
from nodes.sampling import Cond, ModelSampling, ksampler_sigmas, unet_denoiser  # noqa: E402
from tests.nodes.test_ipadapter import VISION_NAME, context, save_ipadapter, tiny_image  # noqa: E402
from tests.nodes.vision_models import save_clip_vision  # noqa: E402

STEPS, CFG, TOLERANCE = 4, 5.0, 1e-3


def euler(denoiser, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = denoiser(x, s)
        x = x + (x - denoised) / s * (s_next - s)
    return x


class DiffusersDenoiser:
    """The pipeline's UNet call with CFG (negative first, as the pipeline batches), k-diffusion form."""

    def __init__(self, pipe, ms: ModelSampling, positive, negative, image_embeds, added=None):
        self.pipe, self.ms = pipe, ms
        self.text = torch.cat([negative, positive])
        self.added = {"image_embeds": image_embeds, **(added or {})}

    @torch.no_grad()
    def __call__(self, x, sigma):
        s = float(sigma)
        x_in = torch.cat([x, x]) / (s * s + 1.0) ** 0.5
        t = self.ms.timestep(torch.tensor(s)).float().expand(2)
        eps = self.pipe.unet(x_in, t, encoder_hidden_states=self.text,
                             added_cond_kwargs=self.added).sample
        uncond, cond = (x - e * s for e in eps.chunk(2))
        return uncond + (cond - uncond) * CFG


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("models")
    modules = tiny_modules(SD15, 3)
    _, vision_module = save_clip_vision(root / "clip_vision", VISION_NAME)
    return root, modules, vision_module


@pytest.mark.parametrize("kind,file_name", [("base", "ip-adapter_sd15.bin"),
                                            ("plus", "ip-adapter-plus_sd15.safetensors")])
def test_sampling_with_ipadapter_equals_diffusers_load_ip_adapter(setup, kind, file_name):
    root, modules, vision_module = setup
    save_ipadapter(root / "ipadapter", file_name, modules["unet"], kind, seed=5)
    ctx = context(root)
    ms = ModelSampling("epsilon")
    model = ModelHandle(modules["unet"], SD15, ms, "tiny")
    ipadapter = IPAdapterModelLoader().run(ctx, file_name)[0]
    vision = load_clip_vision(root / "clip_vision" / VISION_NAME)
    image = tiny_image()
    patched = IPAdapterAdvanced().run(ctx, model, ipadapter, image, 0.8, "linear", "concat", 0.0, 1.0, "V only",
                                      None, None, vision)[0]

    generator = torch.Generator().manual_seed(42)
    positive, negative = torch.randn(1, 77, 32, generator=generator), torch.randn(1, 77, 32, generator=generator)
    sigmas = ksampler_sigmas(ms, "karras", STEPS)
    start = torch.randn(1, 4, 8, 8, generator=generator) * sigmas[0]

    with model_patches_applied(patched) as unet:
        ours = euler(unet_denoiser(unet, ms, positive, negative, CFG), start.clone(), sigmas)

    pipe = StableDiffusionPipeline(vae=modules["vae"], text_encoder=modules["text_encoder"], tokenizer=None,
                                   unet=copy.deepcopy(modules["unet"]),
                                   scheduler=EulerDiscreteScheduler(steps_offset=1), safety_checker=None,
                                   feature_extractor=None, image_encoder=vision_module, requires_safety_checker=False)
    pipe.load_ip_adapter(str(root / "ipadapter"), subfolder="", weight_name=file_name, image_encoder_folder=None)
    pipe.set_ip_adapter_scale(0.8)
    pixels = preprocess(image, vision.image_size, crop=True)
    positive_image, _ = pipe.encode_image(pixels, "cpu", 1, output_hidden_states=kind == "plus")
    negative_image = uncond_embeds(ipadapter.weights, vision, positive_image)
    image_embeds = [torch.cat([negative_image, positive_image])[:, None]]
    theirs = euler(DiffusersDenoiser(pipe, ms, positive, negative, image_embeds), start.clone(), sigmas)

    without = euler(unet_denoiser(modules["unet"], ms, positive, negative, CFG), start.clone(), sigmas)
    assert (ours - without).abs().max() > 1e-2, "the adapter must change the result"
    assert (ours - theirs).abs().max() < TOLERANCE


@pytest.mark.slow  # a second family; ~10 s on a busy 2-core machine
def test_sdxl_unet_with_ipadapter_equals_diffusers_load_ip_adapter(tmp_path):
    """The tiny SDXL UNet (two transformer layers per block, pooled text and size inputs), base adapter."""
    modules = tiny_modules(SDXL_BASE, 4)
    unet = modules["unet"]
    _, vision_module = save_clip_vision(tmp_path / "clip_vision", VISION_NAME)
    save_ipadapter(tmp_path / "ipadapter", "ip-adapter_sdxl_vit-h.safetensors", unet, "base", seed=7)
    ctx = context(tmp_path)
    ms = ModelSampling("epsilon", 0.00085, 0.012)
    model = ModelHandle(unet, SDXL_BASE, ms, "tiny")
    ipadapter = IPAdapterModelLoader().run(ctx, "ip-adapter_sdxl_vit-h.safetensors")[0]
    vision = load_clip_vision(tmp_path / "clip_vision" / VISION_NAME)
    image = tiny_image(2)
    patched = IPAdapterAdvanced().run(ctx, model, ipadapter, image, 1.0, "linear", "concat", 0.0, 1.0, "V only",
                                      None, None, vision)[0]

    g = torch.Generator().manual_seed(3)
    width = unet.config.cross_attention_dim
    pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
    texts = [torch.randn(1, 77, width, generator=g) for _ in range(2)]
    pools = [torch.randn(1, pooled, generator=g) for _ in range(2)]
    time_ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]])
    positive, negative = (Cond(t, {"text_embeds": p, "time_ids": time_ids}) for t, p in zip(texts, pools))
    sigmas = ksampler_sigmas(ms, "karras", 3)
    start = torch.randn(1, 4, 8, 8, generator=g) * sigmas[0]
    with model_patches_applied(patched) as patched_unet:
        ours = euler(unet_denoiser(patched_unet, ms, positive, negative, CFG), start.clone(), sigmas)

    pipe = StableDiffusionXLPipeline(vae=modules["vae"], text_encoder=None, text_encoder_2=None, tokenizer=None,
                                     tokenizer_2=None, unet=copy.deepcopy(unet),
                                     scheduler=EulerDiscreteScheduler(steps_offset=1), image_encoder=vision_module,
                                     feature_extractor=None)
    pipe.load_ip_adapter(str(tmp_path / "ipadapter"), subfolder="", weight_name="ip-adapter_sdxl_vit-h.safetensors",
                         image_encoder_folder=None)
    positive_image, _ = pipe.encode_image(preprocess(image, vision.image_size, crop=True), "cpu", 1)
    image_embeds = [torch.cat([torch.zeros_like(positive_image), positive_image])[:, None]]
    added = {"text_embeds": torch.cat([pools[1], pools[0]]), "time_ids": time_ids.repeat(2, 1)}
    theirs = euler(DiffusersDenoiser(pipe, ms, texts[0], texts[1], image_embeds, added), start.clone(), sigmas)

    without = euler(unet_denoiser(unet, ms, positive, negative, CFG), start.clone(), sigmas)
    assert (ours - without).abs().max() > 1e-2
    assert (ours - theirs).abs().max() < TOLERANCE
