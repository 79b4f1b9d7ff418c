"""CLIPTextEncodeSDXL (a prompt per encoder, original/crop/target size) and the size ids SDXL's UNet
receives: ComfyUI's arithmetic, and the same latent as diffusers' `StableDiffusionXLPipeline` given
the same `original_size`, `crops_coords_top_left` and `target_size`.
"""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.workflow import Workflow
from nodes.conditioning.size_ids import SizeConditioning, sdxl_time_ids
from nodes.models.family import SDXL_BASE
from tests.nodes import test_reference_diffusers as reference
from tests.nodes.checkpoints import TINY_TEXT_WIDTH, save_tiny_checkpoint
from tests.nodes.comfy_sdxl_object_info import COMFY_SDXL_NODES, FILES
from tests.nodes.test_reference_diffusers import (  # noqa: F401  (hub_offline: an autouse fixture)
    CFG,
    SEED,
    SIZE,
    TOLERANCE,
    CaptureValue,
    comfyui_start,
    hub_offline,
)
from tests.nodes.test_toolbox_object_info import comparable

LONG = ", ".join(["a very detailed painting of a lighthouse on a cliff"] * 12)  # two chunks
SIZES = dict(width=832, height=1216, crop_w=16, crop_h=48, target_width=896, target_height=1152)


# --- the numbers -----------------------------------------------------------------------------------

def test_base_ids_default_to_the_latent_size_and_no_crop():
    assert sdxl_time_ids(6, None, 64, 96).tolist() == [[64, 96, 0, 0, 64, 96]]


def test_base_ids_are_height_width_crop_h_crop_w_target_height_target_width():
    size = SizeConditioning(**SIZES)
    assert sdxl_time_ids(6, size, 64, 64).tolist() == [[1216, 832, 48, 16, 1152, 896]]


def test_the_target_size_defaults_to_the_entrys_own_size_not_the_latents():
    size = SizeConditioning(width=512, height=768)
    assert sdxl_time_ids(6, size, 64, 64).tolist() == [[768, 512, 0, 0, 768, 512]]


def test_refiner_ids_end_with_the_aesthetic_score_6_or_on_the_negative_side_2_5():
    assert sdxl_time_ids(5, None, 64, 64).tolist() == [[64, 64, 0, 0, 6.0]]
    assert sdxl_time_ids(5, None, 64, 64, negative=True).tolist() == [[64, 64, 0, 0, 2.5]]
    size = SizeConditioning(width=1024, height=1024, aesthetic_score=3.25)
    assert sdxl_time_ids(5, size, 64, 64, negative=True).tolist() == [[1024, 1024, 0, 0, 3.25]]


def test_the_refiner_ignores_the_target_size_and_the_base_the_aesthetic_score():
    size = SizeConditioning(**SIZES, aesthetic_score=1.0)
    assert sdxl_time_ids(5, size, 64, 64).tolist() == [[1216, 832, 48, 16, 1.0]]
    assert sdxl_time_ids(6, size, 64, 64).tolist() == [[1216, 832, 48, 16, 1152, 896]]


def test_other_id_counts_are_refused():
    with pytest.raises(ValueError, match="4 numbers"):
        sdxl_time_ids(4, None, 64, 64)


# --- the node ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdxl_cond")
    (root / "checkpoints").mkdir()
    save_tiny_checkpoint(root / "checkpoints", SDXL_BASE, seed=3, name="tiny-sdxl")
    registry = NodeRegistry([CaptureValue, *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    return Executor(registry, Paths(root, root.parent / "input", root.parent / "output", root.parent / "temp"))


def encode(executor, **prompts) -> dict:
    """Each prompt encoded by its node: `sdxl_*` by CLIPTextEncodeSDXL (text_g, text_l), others by CLIPTextEncode."""
    graph = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sdxl.safetensors"}}}
    for name, text in prompts.items():
        if isinstance(text, tuple):
            graph[name] = {"class_type": "CLIPTextEncodeSDXL", "inputs": {
                **SIZES, "text_g": text[0], "clip": ["4", 1], "text_l": text[1]}}
        else:
            graph[name] = {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}}
        graph[f"capture_{name}"] = {"class_type": "CaptureValue", "inputs": {"value": [name, 0]}}
    reference.captured.clear()
    result = executor.execute(Workflow.from_api(graph))
    assert result.status == "success", result.error
    return {k.removeprefix("capture_"): v[0] for k, v in reference.captured.items()}


def test_one_prompt_in_both_boxes_encodes_as_clip_text_encode_does(executor):
    got = encode(executor, sdxl=("a red fox", "a red fox"), plain="a red fox")
    assert torch.equal(got["sdxl"].embeds, got["plain"].embeds)
    assert torch.equal(got["sdxl"].pooled, got["plain"].pooled)
    assert got["sdxl"].size == SizeConditioning(**SIZES) and got["plain"].size is None


def test_text_l_goes_to_clip_l_and_text_g_to_clip_g_which_alone_gives_the_pooled_output(executor):
    got = encode(executor, sdxl=("a red fox", "a blue whale"), fox="a red fox", whale="a blue whale")
    width_l = TINY_TEXT_WIDTH  # CLIP-L's columns come first
    assert torch.equal(got["sdxl"].embeds[..., :width_l], got["whale"].embeds[..., :width_l])
    assert torch.equal(got["sdxl"].embeds[..., width_l:], got["fox"].embeds[..., width_l:])
    assert torch.equal(got["sdxl"].pooled, got["fox"].pooled)


def test_the_shorter_prompt_is_padded_with_empty_prompt_chunks(executor):
    got = encode(executor, long_g=(LONG, "a fox"), long_l=("a fox", LONG), fox="a fox", empty="", long=LONG)
    width_l = TINY_TEXT_WIDTH
    assert got["long"].embeds.shape[1] == 154
    for name in ("long_g", "long_l"):
        assert got[name].embeds.shape == (1, 154, 2 * TINY_TEXT_WIDTH)
    # text_l "a fox" then the empty prompt's chunk; text_g the long prompt's two chunks.
    assert torch.equal(got["long_g"].embeds[:, :77, :width_l], got["fox"].embeds[:, :, :width_l])
    assert torch.equal(got["long_g"].embeds[:, 77:, :width_l], got["empty"].embeds[:, :, :width_l])
    assert torch.equal(got["long_g"].embeds[..., width_l:], got["long"].embeds[..., width_l:])
    assert torch.equal(got["long_l"].embeds[:, 77:, width_l:], got["empty"].embeds[:, :, width_l:])
    assert torch.equal(got["long_l"].pooled, got["fox"].pooled)


def test_an_sd1_clip_is_refused_with_a_message():
    from nodes.conditioning_sdxl import encode_sdxl_pair
    from nodes.models.family import SD15
    from nodes.models.handles import ClipHandle

    clip = ClipHandle((object(),), (object(),), SD15, source="tiny-sd15.safetensors")
    with pytest.raises(ValueError, match="needs SDXL base's CLIP.*tiny-sd15.safetensors is sd15"):
        encode_sdxl_pair(clip, "a", "b", [])


# --- against diffusers -------------------------------------------------------------------------------

def test_size_conditioned_txt2img_equals_the_sdxl_pipeline_given_the_same_sizes(executor):
    positive, negative = ("a lighthouse", "a lighthouse at dusk"), ("blurry", "blurry, dark")
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sdxl.safetensors"}},
        "6": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
            **SIZES, "text_g": positive[0], "clip": ["4", 1], "text_l": positive[1]}},
        "7": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
            **SIZES, "text_g": negative[0], "clip": ["4", 1], "text_l": negative[1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": SEED, "steps": 3, "cfg": CFG, "sampler_name": "euler",
            "scheduler": "karras", "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
            "denoise": 1.0}},
    }
    for name, source in {"model": ["4", 0], "clip": ["4", 1], "vae": ["4", 2], "positive": ["6", 0],
                         "negative": ["7", 0], "latent": ["3", 0]}.items():
        graph[f"capture_{name}"] = {"class_type": "CaptureValue", "inputs": {"value": source}}
    reference.captured.clear()
    result = executor.execute(Workflow.from_api(graph))
    assert result.status == "success", result.error
    ours = {k.removeprefix("capture_"): v for k, v in reference.captured.items()}
    model, clip = ours["model"], ours["clip"]

    scheduler = EulerDiscreteScheduler(**reference.SD_SCHEDULE, use_karras_sigmas=True)
    scheduler.set_timesteps(3)
    sigmas = reference.ksampler_sigmas(model.model_sampling, "karras", 3)
    reference.assert_same_schedule(reference.TXT2IMG[1], reference.diffusers_sigmas(scheduler), sigmas)
    noise = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED))
    start = comfyui_start(noise, float(sigmas[0]), model.model_sampling.sigma_max)

    pipe = StableDiffusionXLPipeline(
        vae=ours["vae"].vae, text_encoder=clip.text_encoders[0], text_encoder_2=clip.text_encoders[1],
        tokenizer=clip.tokenizers[0], tokenizer_2=clip.tokenizers[1], unet=model.unet,
        scheduler=EulerDiscreteScheduler(**reference.SD_SCHEDULE, use_karras_sigmas=True), add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    pos, neg = ours["positive"][0], ours["negative"][0]
    sizes = dict(original_size=(SIZES["height"], SIZES["width"]),
                 crops_coords_top_left=(SIZES["crop_h"], SIZES["crop_w"]),
                 target_size=(SIZES["target_height"], SIZES["target_width"]))
    run = dict(prompt_embeds=pos.embeds, negative_prompt_embeds=neg.embeds, pooled_prompt_embeds=pos.pooled,
               negative_pooled_prompt_embeds=neg.pooled, height=SIZE, width=SIZE, guidance_scale=CFG,
               num_inference_steps=3, latents=start / scheduler.init_noise_sigma, output_type="latent")
    latent = pipe(**run, **sizes).images
    got = ours["latent"]["samples"] * model.latent_scale
    assert float((got - latent).abs().max()) < TOLERANCE
    # The sizes reach the UNet: diffusers' defaults (the latent's size) land elsewhere.
    default = pipe(**run).images
    assert float((got - default).abs().max()) > 3 * TOLERANCE
    assert math.isclose(model.latent_scale, 0.13025)


# --- /object_info ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    for module in ("nodes.conditioning_sdxl", "nodes.loaders"):
        registry.register_module(__import__(module, fromlist=["_"]))
    return registry.object_info()


@pytest.mark.parametrize("class_type", sorted(COMFY_SDXL_NODES))
def test_object_info_matches_comfyuis_declaration(object_info, class_type):
    ours, theirs = object_info[class_type], COMFY_SDXL_NODES[class_type]
    assert list(ours["input"]["required"]) == list(theirs["required"])
    assert ours["input_order"]["required"] == list(theirs["required"])
    assert "optional" not in ours["input"] or not ours["input"]["optional"]
    for name, entry in theirs["required"].items():
        if entry[0] == FILES:
            assert isinstance(ours["input"]["required"][name][0], list), name
        else:
            assert comparable(ours["input"]["required"][name]) == comparable(entry), name
    assert ours["output"] == theirs["output"]
    assert ours["category"] == theirs["category"]
    assert ours["display_name"] == theirs["display_name"]
    assert ours["deprecated"] == theirs.get("deprecated", False)
    assert ours["output_node"] is False


def test_a_ui_node_converts_its_widget_values_in_comfyuis_order():
    from engine.ui_format import ui_to_api

    registry = NodeRegistry()
    registry.register_module(__import__("nodes.conditioning_sdxl", fromlist=["_"]))
    ui = {"nodes": [{"id": 6, "type": "CLIPTextEncodeSDXL", "inputs": [{"name": "clip", "type": "CLIP", "link": None}],
                     "widgets_values": [832, 1216, 16, 48, 896, 1152, "a fox, text_g", "a fox, text_l"]}],
          "links": []}
    inputs = ui_to_api(ui, registry).to_api()["6"]["inputs"]
    assert inputs == {"width": 832, "height": 1216, "crop_w": 16, "crop_h": 48, "target_width": 896,
                      "target_height": 1152, "text_g": "a fox, text_g", "text_l": "a fox, text_l"}
