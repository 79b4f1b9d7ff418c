"""SDXL ControlNets: both file layouts load into the weights they were made from, and KSampler with one
applied gives the latent of diffusers' `StableDiffusionXLControlNetPipeline` (fp32, euler/normal at 4 steps,
the conventions of test_controlnet.py and test_reference_diffusers.py).

The ControlNet is tiny and random, made from the tiny SDXL checkpoint's UNet (`from_unet`) with random zero
convolutions. Its size ids are embedded 8 wide (the tiny UNet's width), which no file records: the loader
assumes SDXL's 256 and takes the UNet's width when sampling starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import ControlNetModel, EulerDiscreteScheduler, StableDiffusionXLControlNetPipeline
from safetensors.torch import save_file

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes.models.controlnet_loading import controlnet_state_dict, infer_controlnet_config, load_controlnet
from nodes.models.family import SDXL_BASE, CheckpointFamily
from nodes.sampling import ksampler_sigmas
from tests.nodes.checkpoints import meta_modules, save_tiny_checkpoint
from tests.nodes.test_controlnet import (
    STEPS,
    TestHintImage,
    apply_advanced,
    base_graph,
    hint,
    original_layout,
    run,
    run_ours,
    tiny_controlnet,
)
from tests.nodes.test_reference_diffusers import (  # noqa: F401  (hub_offline: an autouse fixture)
    CFG,
    LINSPACE,
    SD_SCHEDULE,
    SEED,
    SIZE,
    TOLERANCE,
    CaptureValue,
    comfyui_start,
    hub_offline,
)


def executor_with_checkpoint(root: Path, family: CheckpointFamily, name: str) -> tuple[Executor, dict, Path]:
    """A tiny checkpoint (seed 3) as models/checkpoints/<name>.safetensors and an empty models/controlnet under
    `root`, and an Executor on them with the test nodes: (executor, the checkpoint's modules, that folder)."""
    (root / "models" / "checkpoints").mkdir(parents=True)
    folder = root / "models" / "controlnet"
    folder.mkdir()
    _, modules = save_tiny_checkpoint(root / "models" / "checkpoints", family, seed=3, name=name)
    registry = NodeRegistry([CaptureValue, TestHintImage,
                             *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    return Executor(registry, Paths(root / "models", root / "input", root / "output", root / "temp")), modules, folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    executor, modules, folder = executor_with_checkpoint(tmp_path_factory.mktemp("controlnet_sdxl"), SDXL_BASE,
                                                         "tiny-sdxl")
    nets = {"sdxl-original.safetensors": tiny_controlnet(modules["unet"], 1),
            "sdxl-diffusers.safetensors": tiny_controlnet(modules["unet"], 2)}
    save_file(original_layout(nets["sdxl-original.safetensors"]), str(folder / "sdxl-original.safetensors"))
    save_file({k: v.contiguous() for k, v in nets["sdxl-diffusers.safetensors"].state_dict().items()},
              str(folder / "sdxl-diffusers.safetensors"))
    return executor, nets, folder


def sdxl_graph() -> dict:
    graph = base_graph()
    graph["4"]["inputs"]["ckpt_name"] = "tiny-sdxl.safetensors"
    return graph


def reference(ours: dict, controlnet, image, scale: float, pipeline=StableDiffusionXLControlNetPipeline,
              **hints) -> torch.Tensor:
    """The SDXL ControlNet pipeline's final latent (model space) from the same start, prompts and size ids
    (CLIPTextEncode's: the latent's size, no crop, which are also the pipeline's defaults). `hints` replace
    `image=image` for pipelines that name the hint otherwise."""
    model, clip = ours["model"], ours["clip"]
    sigmas = ksampler_sigmas(model.model_sampling, "normal", STEPS)
    noise = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED))
    start = comfyui_start(noise, float(sigmas[0]), model.model_sampling.sigma_max)
    scheduler = EulerDiscreteScheduler(**SD_SCHEDULE, **LINSPACE)
    pipe = pipeline(
        vae=ours["vae"].vae, text_encoder=clip.text_encoders[0], text_encoder_2=clip.text_encoders[1],
        tokenizer=clip.tokenizers[0], tokenizer_2=clip.tokenizers[1], unet=model.unet, controlnet=controlnet,
        scheduler=scheduler, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    pos, neg = ours["positive"][0], ours["negative"][0]
    return pipe(prompt_embeds=pos.embeds, negative_prompt_embeds=neg.embeds, pooled_prompt_embeds=pos.pooled,
                negative_pooled_prompt_embeds=neg.pooled, **(hints or {"image": image}), height=SIZE, width=SIZE,
                guidance_scale=CFG, num_inference_steps=STEPS, latents=start / scheduler.init_noise_sigma,
                controlnet_conditioning_scale=scale, output_type="latent").images


def difference(ours: dict, reference_latent: torch.Tensor) -> float:
    return float((ours["latent"]["samples"] * ours["model"].latent_scale - reference_latent).abs().max())


def test_both_sdxl_layouts_load_the_weights_they_were_made_from(setup):
    """The original layout's `label_emb` (the pooled prompt and size ids' embedding) included."""
    _, nets, folder = setup
    for name, made in nets.items():
        net = load_controlnet(folder / name, torch.float32, "cpu").net
        got, want = net.state_dict(), made.state_dict()
        assert set(got) == set(want), name
        assert all(torch.equal(got[k], want[k]) for k in want), name
        assert net.config.addition_embed_type == "text_time" and net.config.addition_time_embed_dim == 256


@pytest.mark.slow  # three SDXL samplings: ~35 s on a shared 2-core machine
def test_ksampler_with_an_sdxl_controlnet_equals_the_sdxl_controlnet_pipeline(setup):
    executor, nets, _ = setup
    graph = sdxl_graph()
    after = apply_advanced(graph, "a1", (["6", 0], ["7", 0]), "sdxl-original.safetensors", 5, 0.8)
    graph["3"]["inputs"].update(positive=after[0], negative=after[1])
    ours = run_ours(executor, graph)
    expected = reference(ours, nets["sdxl-original.safetensors"], hint(5), 0.8)
    assert difference(ours, expected) < TOLERANCE
    assert difference(run_ours(executor, sdxl_graph()), expected) > 100 * TOLERANCE, "the ControlNet must matter"


def test_an_sd1_controlnet_on_sdxl_fails_naming_both(setup):
    executor, _, folder = setup
    sd1 = ControlNetModel(block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
                          attention_head_dim=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"))
    save_file({k: v.contiguous() for k, v in sd1.state_dict().items()}, str(folder / "sd1-canny.safetensors"))
    graph = sdxl_graph()
    after = apply_advanced(graph, "a1", (["6", 0], ["7", 0]), "sd1-canny.safetensors", 5, 1.0)
    graph["3"]["inputs"].update(positive=after[0], negative=after[1])
    result, _ = run(executor, graph)
    assert result.status == "error"
    message = str(result.error.data())
    assert "sd1-canny.safetensors" in message and "SDXL" in message and "tiny-sdxl.safetensors" in message


def test_a_full_size_sdxl_original_file_converts_to_the_config_it_was_made_with():
    """Shapes only (meta tensors): three levels, the first without attention, transformer depths 2 and 10,
    the pooled prompt and size ids' embedding (2816 = 1280 + 6 × 256) as `label_emb`."""
    with torch.device("meta"):
        net = ControlNetModel.from_unet(meta_modules(SDXL_BASE)["unet"], load_weights_from_unet=False)
    state = controlnet_state_dict(original_layout(net), "controlnet-sdxl.safetensors")
    assert set(state) == set(net.state_dict())
    config = infer_controlnet_config({k: tuple(v.shape) for k, v in state.items()})
    for field in ("block_out_channels", "down_block_types", "transformer_layers_per_block", "attention_head_dim",
                  "cross_attention_dim", "use_linear_projection", "addition_embed_type", "addition_time_embed_dim",
                  "projection_class_embeddings_input_dim", "layers_per_block"):
        want = net.config[field]
        assert config[field] == (list(want) if isinstance(want, tuple) else want), field
