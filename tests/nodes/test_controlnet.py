"""ControlNet: the loaders read both file layouts, and KSampler with applied ControlNets gives the latent
of diffusers' `StableDiffusionControlNetPipeline` on the same weights, seed, hint and schedule.

The ControlNets are tiny and random, made from the tiny SD1.x checkpoint's UNet (`from_unet`), with
their zero-initialised output convolutions given random weights so that control changes the image.
The comparison follows test_reference_diffusers.py (euler with the normal schedule at 4 steps =
EulerDiscreteScheduler with linspace spacing) and reuses its helpers.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import ControlNetModel, EulerDiscreteScheduler, StableDiffusionControlNetPipeline
from safetensors.torch import save_file

from engine.config import EngineConfig, build_registry
from engine.context import RunContext
from engine.declare import Out, node
from engine.execute import Executor
from engine.paths import ModelFiles, Paths
from engine.registry import NodeRegistry
from engine.types import IMAGE, Int
from engine.workflow import Workflow
from nodes.models.controlnet_loading import controlnet_state_dict, infer_controlnet_config, load_controlnet
from nodes.models.family import SD2_V, SD15
from nodes.models.ldm_export import unet_to_ldm
from nodes.sampling import ModelSampling, ksampler_sigmas
from nodes.sampling.control import hint_for, is_active
from tests.nodes.checkpoints import meta_modules, save_tiny_checkpoint
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
    pipeline_parts,
)

STEPS = 4


@node("TestHintImage", outputs=[Out(IMAGE)])
class TestHintImage:
    """A deterministic hint with edges in both directions; `seed` varies it."""

    seed = Int(0, min=0, max=100)

    def run(self, ctx: RunContext, seed: int):
        image = torch.rand((1, SIZE, SIZE, 3), generator=torch.Generator().manual_seed(seed)) > 0.7
        return (image.float(),)


def hint(seed: int) -> torch.Tensor:
    """What TestHintImage gives, as the pipeline takes it: [B, C, H, W] in 0..1."""
    return TestHintImage().run(None, seed)[0].movedim(-1, 1)  # type: ignore[arg-type]


def tiny_controlnet(unet, seed: int) -> ControlNetModel:
    """The UNet's down and mid blocks, with random zero convolutions (their training would make them so)."""
    net = ControlNetModel.from_unet(unet)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
    return net.eval()


def original_layout(net: ControlNetModel) -> dict[str, torch.Tensor]:
    """A ControlNet in the layout of `control_v11p_sd15_*.pth` files (`control_model.*`)."""
    shared, out = {}, {}
    extras = {"controlnet_cond_embedding.conv_in.": "input_hint_block.0.",
              "controlnet_cond_embedding.conv_out.": "input_hint_block.14.",
              "controlnet_mid_block.": "middle_block_out.0."}
    for key, value in net.state_dict().items():
        parts = key.split(".")
        prefix = next((old for old in extras if key.startswith(old)), None)
        if prefix is not None:
            out[extras[prefix] + key[len(prefix):]] = value
        elif parts[0] == "controlnet_down_blocks":
            out[f"zero_convs.{parts[1]}.0.{parts[2]}"] = value
        elif parts[:2] == ["controlnet_cond_embedding", "blocks"]:
            out[f"input_hint_block.{2 * int(parts[2]) + 2}.{parts[3]}"] = value
        else:
            shared[key] = value
    out.update({k.removeprefix("model.diffusion_model."): v
                for k, v in unet_to_ldm(shared, net.config.layers_per_block).items()})
    return {"control_model." + k: v.contiguous() for k, v in out.items()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("controlnet")
    (root / "models" / "checkpoints").mkdir(parents=True)
    (root / "models" / "controlnet").mkdir()
    _, modules = save_tiny_checkpoint(root / "models" / "checkpoints", SD15, seed=3, name="tiny-sd15")
    nets = {"original.safetensors": tiny_controlnet(modules["unet"], 1),
            "diffusers.safetensors": tiny_controlnet(modules["unet"], 2)}
    folder = root / "models" / "controlnet"
    save_file(original_layout(nets["original.safetensors"]), str(folder / "original.safetensors"))
    save_file({k: v.contiguous() for k, v in nets["diffusers.safetensors"].state_dict().items()},
              str(root / "models" / "controlnet" / "diffusers.safetensors"))
    base = {k.replace("model.diffusion_model.", "control_model."): v
            for k, v in unet_to_ldm(modules["unet"].state_dict(), 1).items()}
    difference = {k: v - base[k] if k in base else v for k, v in original_layout(nets["original.safetensors"]).items()}
    save_file({**difference, "difference": torch.zeros(1)}, str(root / "models" / "controlnet" / "diff.safetensors"))
    sd2_like = ControlNetModel(block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=1024,
                               attention_head_dim=[1, 1], use_linear_projection=True,
                               down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"))
    save_file({k: v.contiguous() for k, v in sd2_like.state_dict().items()},
              str(root / "models" / "controlnet" / "sd2-canny.safetensors"))
    registry = NodeRegistry([CaptureValue, TestHintImage,
                             *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    executor = Executor(registry, Paths(root / "models", root / "input", root / "output", root / "temp"))
    return executor, nets, root / "models" / "controlnet", modules


def base_graph() -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
            "denoise": 1.0}},
        "capture_model": {"class_type": "CaptureValue", "inputs": {"value": ["4", 0]}},
        "capture_clip": {"class_type": "CaptureValue", "inputs": {"value": ["4", 1]}},
        "capture_vae": {"class_type": "CaptureValue", "inputs": {"value": ["4", 2]}},
        "capture_positive": {"class_type": "CaptureValue", "inputs": {"value": ["6", 0]}},
        "capture_negative": {"class_type": "CaptureValue", "inputs": {"value": ["7", 0]}},
        "capture_latent": {"class_type": "CaptureValue", "inputs": {"value": ["3", 0]}},
    }


def apply_advanced(graph: dict, node_id: str, after: tuple[list, list], name: str, hint_seed: int, strength: float,
                   end_percent: float = 1.0) -> tuple[list, list]:
    graph[f"cn{node_id}"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": name}}
    graph[f"hint{node_id}"] = {"class_type": "TestHintImage", "inputs": {"seed": hint_seed}}
    graph[node_id] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": after[0], "negative": after[1], "control_net": [f"cn{node_id}", 0],
        "image": [f"hint{node_id}", 0], "strength": strength, "start_percent": 0.0, "end_percent": end_percent}}
    return [node_id, 0], [node_id, 1]


def run(executor: Executor, graph: dict):
    captured.clear()
    result = executor.execute(Workflow.from_api(graph))
    return result, {k.removeprefix("capture_"): v for k, v in captured.items()}


def run_ours(executor: Executor, graph: dict) -> dict:
    result, values = run(executor, graph)
    assert result.status == "success", result.error
    return values


def reference(ours: dict, controlnet, image, scale, **kwargs) -> torch.Tensor:
    """The pipeline's final latent (model space) from the same start as ours."""
    model = ours["model"]
    sigmas = ksampler_sigmas(model.model_sampling, "normal", STEPS)
    noise = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED))
    start = comfyui_start(noise, float(sigmas[0]), model.model_sampling.sigma_max)
    scheduler = EulerDiscreteScheduler(**SD_SCHEDULE, **LINSPACE)
    pipe = StableDiffusionControlNetPipeline(**pipeline_parts(ours), controlnet=controlnet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt_embeds=ours["positive"][0].embeds, negative_prompt_embeds=ours["negative"][0].embeds,
                image=image, height=SIZE, width=SIZE, guidance_scale=CFG, num_inference_steps=STEPS,
                latents=start / scheduler.init_noise_sigma, controlnet_conditioning_scale=scale,
                output_type="latent", **kwargs).images


def difference(ours: dict, reference_latent: torch.Tensor) -> float:
    return float((ours["latent"]["samples"] * ours["model"].latent_scale - reference_latent).abs().max())


def test_both_file_layouts_and_a_difference_file_load_the_weights_they_were_made_from(setup):
    _, nets, folder, modules = setup
    loaded = {"original.safetensors": load_controlnet(folder / "original.safetensors", torch.float32, "cpu"),
              "diffusers.safetensors": load_controlnet(folder / "diffusers.safetensors", torch.float32, "cpu"),
              "diff": load_controlnet(folder / "diff.safetensors", torch.float32, "cpu", base_unet=modules["unet"])}
    for name, handle in loaded.items():
        expected = nets["diffusers.safetensors" if name == "diffusers.safetensors" else "original.safetensors"]
        want, got = expected.state_dict(), handle.net.state_dict()
        assert set(got) == set(want), name
        for key in want:
            assert torch.allclose(got[key], want[key], atol=1e-6), (name, key)
    assert loaded["original.safetensors"].net.config.attention_head_dim == 8  # SD1.x heads, not 64-channel ones


def test_ksampler_with_controlnet_apply_equals_the_controlnet_pipeline(setup):
    """ControlNetApply also controls the negative side, as the pipeline does."""
    executor, nets, *_ = setup
    graph = base_graph()
    graph["cn"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "original.safetensors"}}
    graph["hint"] = {"class_type": "TestHintImage", "inputs": {"seed": 5}}
    graph["apply"] = {"class_type": "ControlNetApply", "inputs": {
        "conditioning": ["6", 0], "control_net": ["cn", 0], "image": ["hint", 0], "strength": 0.8}}
    graph["3"]["inputs"]["positive"] = ["apply", 0]
    ours = run_ours(executor, graph)
    uncontrolled = run_ours(executor, base_graph())
    expected = reference(ours, nets["original.safetensors"], hint(5), 0.8)
    assert difference(ours, expected) < TOLERANCE
    assert difference(uncontrolled, expected) > 100 * TOLERANCE, "the ControlNet must change the result"


def test_two_chained_controlnets_equal_the_pipeline_with_both(setup):
    executor, nets, *_ = setup
    graph = base_graph()
    after = apply_advanced(graph, "a1", (["6", 0], ["7", 0]), "original.safetensors", 5, 0.7)
    after = apply_advanced(graph, "a2", after, "diffusers.safetensors", 9, 1.3)
    graph["3"]["inputs"].update(positive=after[0], negative=after[1])
    ours = run_ours(executor, graph)
    expected = reference(ours, [nets["original.safetensors"], nets["diffusers.safetensors"]], [hint(5), hint(9)],
                         [0.7, 1.3])
    assert difference(ours, expected) < TOLERANCE


def test_end_percent_stops_control_where_the_pipelines_guidance_end_does(setup):
    """At 4 normal steps (timesteps 999, 666, 333, 0) end_percent 0.5 keeps the first two steps."""
    executor, nets, *_ = setup
    graph = base_graph()
    after = apply_advanced(graph, "a1", (["6", 0], ["7", 0]), "original.safetensors", 5, 1.0, end_percent=0.5)
    graph["3"]["inputs"].update(positive=after[0], negative=after[1])
    ours = run_ours(executor, graph)
    full = reference(ours, nets["original.safetensors"], hint(5), 1.0)
    expected = reference(ours, nets["original.safetensors"], hint(5), 1.0, control_guidance_end=0.5)
    assert difference(ours, expected) < TOLERANCE
    assert difference(ours, full) > 10 * TOLERANCE


def test_a_controlnet_of_another_family_fails_naming_both(setup):
    executor, *_ = setup
    graph = base_graph()
    after = apply_advanced(graph, "a1", (["6", 0], ["7", 0]), "sd2-canny.safetensors", 5, 1.0)
    graph["3"]["inputs"].update(positive=after[0], negative=after[1])
    result, _ = run(executor, graph)
    assert result.status == "error"
    message = str(result.error.data())
    assert "sd2-canny.safetensors" in message and "SD2.x" in message and "tiny-sd15.safetensors" in message


def test_the_hint_is_centre_cropped_and_resized_to_the_latent_nearest_exact():
    wide = torch.arange(2 * 3 * 8 * 16, dtype=torch.float32).reshape(2, 3, 8, 16)
    x = torch.zeros(4, 4, 2, 2)  # 16×16 pixels, batch 4
    got = hint_for(wide, x)
    assert got.shape == (4, 3, 16, 16)
    cropped = wide[:, :, :, 4:12]
    expected = torch.nn.functional.interpolate(cropped, size=(16, 16), mode="nearest-exact")
    assert torch.equal(got[:2], expected) and torch.equal(got[2:], expected)


def test_start_and_end_percent_are_sigma_bounds():
    class Control:
        start_percent, end_percent = 0.25, 0.75

    ms = ModelSampling()
    assert is_active(Control, float(ms.sigma(500.0)), ms)
    assert not is_active(Control, float(ms.sigma(900.0)), ms)
    assert not is_active(Control, float(ms.sigma(100.0)), ms)


def test_controlnet_files_are_read_from_the_controlnet_and_t2i_adapter_folders(tmp_path):
    """ComfyUI reads models/t2i_adapter as a second ControlNet folder."""
    for folder, name in (("controlnet", "canny.safetensors"), ("t2i_adapter", "t2i/depth.pth"), ("loras", "x.pt")):
        (tmp_path / folder / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / name).write_bytes(b"")
    paths = Paths(tmp_path)
    assert ModelFiles("controlnet").choices(paths) == ["canny.safetensors", "t2i/depth.pth"]
    assert paths.model_path("controlnet", "t2i/depth.pth") == (tmp_path / "t2i_adapter" / "t2i" / "depth.pth").resolve()


@pytest.mark.parametrize("family", [SD15, SD2_V], ids=lambda f: f.name)
def test_full_size_original_files_convert_to_the_config_they_were_made_with(family):
    """control_v11p_sd15_* and SD2.x ControlNets (shapes only): the config read back from the converted
    tensors is the one the ControlNet was built with (heads included: 8 for SD1.x, 64 channels each after)."""
    with torch.device("meta"):
        net = ControlNetModel.from_unet(meta_modules(family)["unet"], load_weights_from_unet=False)
    state = controlnet_state_dict(original_layout(net), "full.pth")
    assert set(state) == set(net.state_dict())
    config = infer_controlnet_config({k: tuple(v.shape) for k, v in state.items()})
    heads = net.config.attention_head_dim
    expected = {k: list(v) if isinstance(v, tuple) else v for k, v in net.config.items() if k in config}
    expected["attention_head_dim"] = list(heads) if isinstance(heads, (list, tuple)) else heads
    expected["transformer_layers_per_block"] = [1] * len(net.config.block_out_channels)
    got = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    assert got == expected
