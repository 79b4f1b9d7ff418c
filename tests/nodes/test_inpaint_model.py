"""Inpainting UNets (9 input channels): recognised in the real single-file layouts, loaded, and sampled with
the mask and masked image beside the latent, equal to diffusers' StableDiffusionInpaintPipeline on the same
weights; InpaintModelConditioning and VAEEncodeForInpaint feed them as in ComfyUI."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

os.environ["HF_HUB_OFFLINE"] = "1"  # everything is built from our modules; never reach a hub

from diffusers import EulerDiscreteScheduler, StableDiffusionInpaintPipeline  # noqa: E402

from engine.context import RunContext  # noqa: E402
from engine.declare import NodeResult, Out, node  # noqa: E402
from engine.execute import Executor  # noqa: E402
from engine.paths import Paths  # noqa: E402
from engine.registry import NodeRegistry  # noqa: E402
from engine.types import ANY, IMAGE, MASK, Link  # noqa: E402
from engine.workflow import Workflow  # noqa: E402
from nodes.conditioning.inpaint import BLANK_IMAGE_LATENT, inpaint_channels  # noqa: E402
from nodes.conditioning_nodes import CLIPTextEncode  # noqa: E402
from nodes.custom_sampling import SamplerCustom  # noqa: E402
from nodes.inpaint_nodes import InpaintModelConditioning  # noqa: E402
from nodes.latent import EmptyLatentImage  # noqa: E402
from nodes.loaders import CheckpointLoaderSimple  # noqa: E402
from nodes.models.family import SD2_EPS, SD15, SDXL_BASE, UNET_PREFIX, detect_family  # noqa: E402
from nodes.models.ldm_convert import configs_for_checkpoint  # noqa: E402
from nodes.models.modules import assign_weights, build_text_encoder, build_unet, build_vae  # noqa: E402
from nodes.models.shipped_configs import text_encoder_names  # noqa: E402
from nodes.sampler_nodes import KSampler  # noqa: E402
from nodes.sampler_select import BasicScheduler, KSamplerSelect  # noqa: E402
from nodes.vae_nodes import VAEEncodeForInpaint  # noqa: E402
from tests.nodes.checkpoints import full_size_ldm_shapes, ldm_state_dict, tiny_configs  # noqa: E402
from tests.nodes.comfy_inpaint_object_info import COMFY_INPAINT_NODES, NOISE_MASK_TOOLTIP  # noqa: E402
from tests.nodes.test_toolbox_object_info import comparable  # noqa: E402

SEED, CFG, SIZE, STEPS = 8566257, 6.0, 64, 4
POSITIVE, NEGATIVE = "a red circle on a blue square", "blurry"
CONV_IN = UNET_PREFIX + "input_blocks.0.0.weight"
MASK_BOX = (16, 40, 24, 56)  # rows, columns: on the 8-pixel grid, so nearest and bilinear-then-round agree


def tiny_inpaint_modules(family, seed: int) -> dict:
    """A tiny checkpoint's modules (nodes.models.tiny's shapes) whose UNet takes 9 input channels."""
    configs = tiny_configs(family)
    configs.unet["in_channels"] = 9
    generator = torch.Generator().manual_seed(seed)
    built = {"unet": build_unet(configs.unet), "vae": build_vae(configs.vae)}
    built.update({n: build_text_encoder(configs.text_encoders[n]) for n in text_encoder_names(configs.model_index)})
    return {name: assign_weights(m, {k: torch.randn(tuple(v.shape), generator=generator) * 0.05
                                     for k, v in sorted(m.state_dict().items())},
                                 dtype=torch.float32, device="cpu", component=name)
            for name, m in built.items()}


def save_inpaint_checkpoint(folder: Path, family, name: str, seed: int = 3) -> Path:
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in ldm_state_dict(family, tiny_inpaint_modules(family, seed)).items()},
              str(path))
    return path


captured: dict[str, object] = {}


@node("CaptureInpaint", output_node=True, always_rerun=True)
class CaptureInpaint:
    """Hands what reaches it to the test, keyed by node id."""

    value = Link(ANY)

    def run(self, ctx: RunContext, value):
        captured[ctx.node_id] = value
        return NodeResult(ui={})


@node("TestInpaintImage", outputs=[Out(IMAGE)])
class TestInpaintImage:
    """A deterministic image with structure in both directions."""

    def run(self, ctx: RunContext):
        ys, xs = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
        return (torch.stack([xs, ys, 0.5 + 0.5 * torch.sin(6 * xs + 3 * ys)], dim=-1)[None],)


@node("TestBoxMask", outputs=[Out(MASK)])
class TestBoxMask:
    """1 inside MASK_BOX, 0 elsewhere."""

    def run(self, ctx: RunContext):
        return (box_mask(),)


def box_mask() -> torch.Tensor:
    mask = torch.zeros(1, SIZE, SIZE)
    top, bottom, left, right = MASK_BOX
    mask[:, top:bottom, left:right] = 1.0
    return mask


@pytest.fixture(scope="module", autouse=True)
def hub_offline():
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint")
    checkpoints = root / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    save_inpaint_checkpoint(checkpoints, SD15, "tiny-sd15-inpainting")
    save_inpaint_checkpoint(checkpoints, SDXL_BASE, "tiny-sdxl-inpainting")
    registry = NodeRegistry([CaptureInpaint, TestInpaintImage, TestBoxMask, CheckpointLoaderSimple, CLIPTextEncode,
                             EmptyLatentImage, KSampler, InpaintModelConditioning, VAEEncodeForInpaint,
                             SamplerCustom, KSamplerSelect, BasicScheduler])
    return Executor(registry, Paths(root / "models", root / "input", root / "output", root / "temp"))


def graph(ckpt: str = "tiny-sd15-inpainting.safetensors", prepare: str = "InpaintModelConditioning",
          noise_mask: bool = False, steps: int = STEPS, seed: int = SEED) -> Workflow:
    """Loader → prompts → the image and mask prepared by `prepare` → KSampler (euler, normal), all captured."""
    api = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "10": {"class_type": "TestInpaintImage", "inputs": {}},
        "11": {"class_type": "TestBoxMask", "inputs": {}},
    }
    if prepare == "InpaintModelConditioning":
        api["12"] = {"class_type": "InpaintModelConditioning", "inputs": {
            "positive": ["6", 0], "negative": ["7", 0], "vae": ["4", 2], "pixels": ["10", 0], "mask": ["11", 0],
            "noise_mask": noise_mask}}
        positive, negative, latent = ["12", 0], ["12", 1], ["12", 2]
    else:
        api["12"] = {"class_type": "VAEEncodeForInpaint", "inputs": {
            "pixels": ["10", 0], "vae": ["4", 2], "mask": ["11", 0], "grow_mask_by": 0}}
        positive, negative, latent = ["6", 0], ["7", 0], ["12", 0]
    api["3"] = {"class_type": "KSampler", "inputs": {
        "model": ["4", 0], "seed": seed, "steps": steps, "cfg": CFG, "sampler_name": "euler", "scheduler": "normal",
        "positive": positive, "negative": negative, "latent_image": latent, "denoise": 1.0}}
    for name, source in {"model": ["4", 0], "clip": ["4", 1], "vae": ["4", 2], "positive": positive,
                         "negative": negative, "init": latent, "latent": ["3", 0], "pixels": ["10", 0]}.items():
        api[f"capture_{name}"] = {"class_type": "CaptureInpaint", "inputs": {"value": source}}
    return Workflow.from_api(api)


def run_ours(executor: Executor, workflow: Workflow) -> dict:
    captured.clear()
    result = executor.execute(workflow)
    assert result.status == "success", result.error
    return {k.removeprefix("capture_"): v for k, v in captured.items()}


# --- recognising and loading -----------------------------------------------------------------------

@pytest.mark.parametrize("family, filename", [(SD15, "sd-v1-5-inpainting.safetensors"),
                                              (SD2_EPS, "512-inpainting-ema.safetensors"),
                                              (SDXL_BASE, "sdxl-inpainting-0.1.safetensors")], ids=str)
def test_full_size_inpainting_checkpoints_are_their_family_with_a_9_channel_unet(family, filename):
    shapes = {k: tuple(v.shape) for k, v in full_size_ldm_shapes(family).items()}
    shapes[CONV_IN] = (shapes[CONV_IN][0], 9, *shapes[CONV_IN][2:])
    assert detect_family(shapes, filename=filename) == family
    config = configs_for_checkpoint(shapes, family).unet
    assert config["in_channels"] == 9 and config["out_channels"] == 4


# --- the extra channels ----------------------------------------------------------------------------

def test_the_extra_channels_are_the_rounded_mask_at_latent_size_then_the_image():
    samples = torch.randn(2, 4, 8, 8)
    mask = torch.zeros(1, 64, 64)
    mask[:, 0:20, :] = 1.0  # rows 0..2.5 of the latent: bilinear gives 1, 1, 0.5 → round → 1, 1, 0 (half to even)
    image = torch.randn(1, 4, 8, 8)
    channels = inpaint_channels(samples, mask, image)
    assert channels.shape == (2, 5, 8, 8)
    assert torch.equal(channels[:, 0].sum(dim=-1)[0], torch.tensor([8.0, 8.0, 0, 0, 0, 0, 0, 0]))
    assert torch.equal(channels[:, 1:], image.expand(2, -1, -1, -1))


def test_without_an_image_the_latent_itself_is_the_masked_image():
    samples, mask = torch.randn(1, 4, 8, 8), torch.ones(8, 8)
    assert torch.equal(inpaint_channels(samples, mask, None)[:, 1:], samples)


def test_without_a_mask_the_mask_is_all_ones_and_the_image_blank():
    channels = inpaint_channels(torch.randn(1, 4, 4, 6), None, torch.randn(1, 4, 4, 6))
    assert torch.equal(channels[:, 0], torch.ones(1, 4, 6))
    for c, value in enumerate(BLANK_IMAGE_LATENT):
        assert torch.allclose(channels[:, 1 + c], torch.full((1, 4, 6), value))


def test_a_mask_of_another_aspect_is_centre_cropped_before_resizing():
    mask = torch.zeros(1, 8, 16)
    mask[:, :, 4:12] = 1.0  # the centre square of a wide mask
    assert torch.equal(inpaint_channels(torch.zeros(1, 4, 8, 8), mask, None)[0, 0], torch.ones(8, 8))


# --- against diffusers -----------------------------------------------------------------------------

def test_inpaint_model_conditioning_on_a_9_channel_unet_equals_the_inpaint_pipeline(executor):
    ours = run_ours(executor, graph())
    model, clip, vae = ours["model"], ours["clip"], ours["vae"]
    assert model.unet.config.in_channels == 9
    scale = model.latent_scale
    # The pipeline's own inputs, made here: the masked image in [-1, 1] (mask < 0.5 kept) and its posterior
    # mean (our VAEEncode's choice; the pipeline would sample it), the mask as an image.
    pixels = ours["pixels"].permute(0, 3, 1, 2)
    mask = box_mask()[:, None]
    with torch.no_grad():
        masked_latent = vae.vae.encode((pixels * 2 - 1) * (mask < 0.5)).latent_dist.mean * scale
        init_latent = vae.vae.encode(pixels * 2 - 1).latent_dist.mean * scale
    assert torch.allclose(ours["init"]["samples"] * scale, init_latent, atol=1e-6)
    assert "noise_mask" not in ours["init"]
    # ComfyUI's start: the noise times sqrt(1 + sigma_0^2) at the top of the schedule, plus the latent.
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       prediction_type="epsilon", steps_offset=1, timestep_spacing="linspace")
    scheduler.set_timesteps(STEPS)
    sigma_0 = float(scheduler.sigmas[0])
    noise = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED))
    start = noise * math.sqrt(1 + sigma_0**2) + init_latent
    pipe = StableDiffusionInpaintPipeline(vae=vae.vae, text_encoder=clip.text_encoders[0],
                                          tokenizer=clip.tokenizers[0], unet=model.unet, scheduler=scheduler,
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(prompt_embeds=ours["positive"][0].embeds, negative_prompt_embeds=ours["negative"][0].embeds,
                     image=pixels, mask_image=mask, masked_image_latents=masked_latent, height=SIZE, width=SIZE,
                     strength=1.0, guidance_scale=CFG, num_inference_steps=STEPS,
                     latents=start / scheduler.init_noise_sigma, generator=torch.Generator().manual_seed(SEED + 1),
                     output_type="latent").images
    difference = float((ours["latent"]["samples"] * scale - reference).abs().max())
    assert difference < 1e-3
    assert float(reference.abs().max()) > 0.1, "a latent, not nothing"


def load(executor: Executor, ckpt: str) -> dict:
    """The checkpoint's model and VAE, loaded through the executor (so later runs reuse them from its cache)."""
    return run_ours(executor, Workflow.from_api({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "capture_model": {"class_type": "CaptureInpaint", "inputs": {"value": ["4", 0]}},
        "capture_vae": {"class_type": "CaptureInpaint", "inputs": {"value": ["4", 2]}}}))


def conv_in_inputs(executor: Executor, ckpt: str = "tiny-sd15-inpainting.safetensors",
                   **kw) -> tuple[dict, list[torch.Tensor]]:
    """Run `graph(ckpt, steps=1, **kw)` once, recording what the UNet's first convolution sees at every call."""
    seen: list[torch.Tensor] = []
    loaded = load(executor, ckpt)  # the loader's output is cached for the run below
    handle = loaded["model"].unet.conv_in.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    try:
        ours = run_ours(executor, graph(ckpt, steps=1, seed=next(SEEDS), **kw))
    finally:
        handle.remove()
    assert ours["model"] is loaded["model"]
    return ours, seen


SEEDS = iter(range(1000, 2000))  # a KSampler never answered from the cache


def test_vae_encode_for_inpaint_feeds_its_noise_mask_and_latent_to_a_9_channel_unet(executor):
    ours, seen = conv_in_inputs(executor, prepare="VAEEncodeForInpaint")
    init, scale = ours["init"], ours["model"].latent_scale
    expected_mask = torch.nn.functional.interpolate(init["noise_mask"].reshape(1, 1, SIZE, SIZE), size=(8, 8),
                                                    mode="bilinear").round()
    assert seen and all(x.shape == (2, 9, 8, 8) for x in seen)  # positive and negative in one call
    for x in seen:
        assert torch.equal(x[:, 4:5], expected_mask.expand(2, -1, -1, -1))
        assert torch.allclose(x[:, 5:], (init["samples"] * scale).expand(2, -1, -1, -1))
    assert expected_mask.sum() == 3 * 4, "the box, in latent pixels"


def test_vae_encode_for_inpaint_gives_a_0_1_noise_mask_without_growing_as_comfyui(executor):
    vae = load(executor, "tiny-sd15-inpainting.safetensors")["vae"]
    soft = torch.linspace(0, 1, SIZE).expand(1, SIZE, SIZE)
    (latent,) = VAEEncodeForInpaint().run(None, torch.full((1, SIZE, SIZE, 3), 0.3), vae, soft, 0)
    assert torch.equal(latent["noise_mask"], soft.round()[:, None])


def test_inpaint_model_conditioning_puts_the_masked_image_not_the_latent_beside_x(executor):
    ours, seen = conv_in_inputs(executor)
    positive, scale = ours["positive"][0], ours["model"].latent_scale
    assert positive.concat_latent_image is not None and positive.concat_mask is not None
    for x in seen:
        assert torch.allclose(x[:, 5:], (positive.concat_latent_image * scale).expand(2, -1, -1, -1))
        assert not torch.allclose(x[:, 5:], (ours["init"]["samples"] * scale).expand(2, -1, -1, -1))


def test_noise_mask_keeps_the_unmasked_latent_as_it_was(executor):
    ours = run_ours(executor, graph(noise_mask=True))
    assert torch.equal(ours["init"]["noise_mask"], box_mask()[:, None])
    top, bottom, left, right = (v // 8 for v in MASK_BOX)
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[top:bottom, left:right] = False
    torch.testing.assert_close(ours["latent"]["samples"][..., outside], ours["init"]["samples"][..., outside])
    assert not torch.allclose(ours["latent"]["samples"][..., ~outside], ours["init"]["samples"][..., ~outside])


def test_sampler_custom_feeds_a_9_channel_unet_as_ksampler_does(executor):
    ksampler = run_ours(executor, graph())["latent"]["samples"]
    api = {k: {"class_type": n["class_type"], "inputs": n["inputs"]} for k, n in graph().to_api().items()}
    inputs = api.pop("3")["inputs"]
    api["s"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    api["b"] = {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "normal", "steps": STEPS,
                                                          "denoise": 1.0}}
    api["3"] = {"class_type": "SamplerCustom", "inputs": {
        "model": ["4", 0], "add_noise": True, "noise_seed": SEED, "cfg": CFG, "positive": inputs["positive"],
        "negative": inputs["negative"], "sampler": ["s", 0], "sigmas": ["b", 0],
        "latent_image": inputs["latent_image"]}}
    custom = run_ours(executor, Workflow.from_api(api))["latent"]["samples"]
    assert torch.equal(custom, ksampler)


def test_an_sdxl_inpainting_unet_samples_with_the_extra_channels(executor):
    ours, seen = conv_in_inputs(executor, "tiny-sdxl-inpainting.safetensors")
    assert ours["model"].family == SDXL_BASE
    assert seen and all(x.shape[1] == 9 for x in seen)
    assert torch.isfinite(ours["latent"]["samples"]).all()


def test_a_plain_unet_ignores_what_inpaint_model_conditioning_adds(executor):
    from tests.nodes.checkpoints import save_tiny_checkpoint

    save_tiny_checkpoint(executor.paths.models_dir / "checkpoints", SD15, seed=3, name="tiny-sd15-plain")
    ours, seen = conv_in_inputs(executor, "tiny-sd15-plain.safetensors")
    assert ours["positive"][0].concat_mask is not None
    assert seen and all(x.shape[1] == 4 for x in seen)


# --- /object_info -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    for module in ("nodes.inpaint_nodes", "nodes.vae_nodes"):
        registry.register_module(__import__(module, fromlist=["_"]))
    return registry.object_info()


@pytest.mark.parametrize("class_type", sorted(COMFY_INPAINT_NODES))
def test_object_info_matches_comfyui(object_info, class_type):
    ours, theirs = object_info[class_type], COMFY_INPAINT_NODES[class_type]
    assert list(ours["input"]["required"]) == list(theirs["required"])
    assert ours["input_order"]["required"] == list(theirs["required"])
    for name, entry in theirs["required"].items():
        assert comparable(ours["input"]["required"][name]) == comparable(entry), name
    assert not ours["input"].get("optional")
    assert ours["input"]["required"].get("noise_mask", [None, {}])[1].get("tooltip") in (None, NOISE_MASK_TOOLTIP)
    for key in ("output", "output_name", "category", "display_name"):
        assert ours[key] == theirs[key], key
    assert ours["output_node"] is False
