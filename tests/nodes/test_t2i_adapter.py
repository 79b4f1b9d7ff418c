"""T2I-Adapters: loaded from ControlNet files by their keys (original and diffusers layouts; full, light and
SDXL), and KSampler with an applied adapter gives the latent of diffusers' `StableDiffusionAdapterPipeline`
on the same weights, seed, hint and schedule (fp32, euler/normal at 4 steps as test_controlnet.py)."""

from __future__ import annotations

import re

import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionAdapterPipeline, T2IAdapter
from safetensors.torch import save_file

from engine.config import EngineConfig, build_registry
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes.models.controlnet_loading import load_controlnet
from nodes.models.family import SD15
from nodes.models.t2i_adapter_loading import adapter_weights_and_config
from nodes.sampling import ksampler_sigmas
from tests.nodes.checkpoints import save_tiny_checkpoint
from tests.nodes.test_controlnet import STEPS, TestHintImage, apply_advanced, base_graph, hint, run, run_ours
from tests.nodes.test_reference_diffusers import CFG, LINSPACE, SD_SCHEDULE, SEED, SIZE, CaptureValue, comfyui_start

TOLERANCE = 1e-3  # the bound on the latent (fp32)


def tiny_adapter(seed: int, in_channels: int = 3, channels=(32, 64), kind: str = "full_adapter",
                 blocks: int = 2) -> T2IAdapter:
    torch.manual_seed(seed)
    return T2IAdapter(in_channels=in_channels, channels=list(channels), num_res_blocks=blocks,
                      downscale_factor=16 if kind == "full_adapter_xl" else 8, adapter_type=kind).eval()


def original_layout(adapter: T2IAdapter) -> dict[str, torch.Tensor]:
    """TencentARC's layout: full adapters number their blocks flat (`body.K`, K = level × 2 + block), light ones
    keep `body.I.body.J`."""
    light = adapter.config.adapter_type == "light_adapter"
    out = {}
    for key, value in adapter.state_dict().items():
        key = key.removeprefix("adapter.")
        if light:
            key = re.sub(r"^body\.(\d+)\.resnets\.", r"body.\1.body.", key)
        elif m := re.match(r"body\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            key = f"body.{int(m.group(1)) * 2 + int(m.group(2))}.{m.group(3)}"
        elif m := re.match(r"body\.(\d+)\.in_conv\.(.+)", key):
            key = f"body.{int(m.group(1)) * 2}.in_conv.{m.group(2)}"
        out[key] = value.contiguous()
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2i")
    (root / "models" / "checkpoints").mkdir(parents=True)
    folder = root / "models" / "t2i_adapter"
    folder.mkdir()
    save_tiny_checkpoint(root / "models" / "checkpoints", SD15, seed=3, name="tiny-sd15")
    adapters = {"t2i-rgb.pth": tiny_adapter(1), "t2i-grey.safetensors": tiny_adapter(2, in_channels=1),
                "t2i-wide.safetensors": tiny_adapter(3, channels=(64, 128))}
    torch.save(original_layout(adapters["t2i-rgb.pth"]), folder / "t2i-rgb.pth")
    save_file({k: v.contiguous() for k, v in adapters["t2i-grey.safetensors"].state_dict().items()},
              str(folder / "t2i-grey.safetensors"))
    save_file(original_layout(adapters["t2i-wide.safetensors"]), str(folder / "t2i-wide.safetensors"))
    registry = NodeRegistry([CaptureValue, TestHintImage,
                             *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    executor = Executor(registry, Paths(root / "models", root / "input", root / "output", root / "temp"))
    return executor, adapters


def reference(ours: dict, adapter, image, scale: float) -> torch.Tensor:
    model = ours["model"]
    sigmas = ksampler_sigmas(model.model_sampling, "normal", STEPS)
    noise = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED))
    start = comfyui_start(noise, float(sigmas[0]), model.model_sampling.sigma_max)
    scheduler = EulerDiscreteScheduler(**SD_SCHEDULE, **LINSPACE)
    pipe = StableDiffusionAdapterPipeline(
        vae=ours["vae"].vae, text_encoder=ours["clip"].text_encoders[0], tokenizer=ours["clip"].tokenizers[0],
        unet=model.unet, adapter=adapter, scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt_embeds=ours["positive"][0].embeds, negative_prompt_embeds=ours["negative"][0].embeds,
                image=image, height=SIZE, width=SIZE, guidance_scale=CFG, num_inference_steps=STEPS,
                latents=start / scheduler.init_noise_sigma, adapter_conditioning_scale=scale,
                output_type="latent").images


def difference(ours: dict, reference_latent: torch.Tensor) -> float:
    return float((ours["latent"]["samples"] * ours["model"].latent_scale - reference_latent).abs().max())


def test_an_original_layout_adapter_equals_the_adapter_pipeline(setup):
    """Loaded by ControlNetLoader from models/t2i_adapter, applied to both sides with ControlNetApplyAdvanced."""
    executor, adapters = setup
    graph = base_graph()
    after = apply_advanced(graph, "a1", (["6", 0], ["7", 0]), "t2i-rgb.pth", 5, 0.6)
    graph["3"]["inputs"].update(positive=after[0], negative=after[1])
    ours = run_ours(executor, graph)
    expected = reference(ours, adapters["t2i-rgb.pth"], hint(5), 0.6)
    assert difference(ours, expected) < TOLERANCE
    assert difference(run_ours(executor, base_graph()), expected) > 100 * TOLERANCE, "the adapter must matter"


def test_a_grey_adapter_takes_the_mean_of_the_hints_channels(setup):
    """ControlNetApply (the old node) also controls the negative side, as the pipeline does."""
    executor, adapters = setup
    graph = base_graph()
    graph["cn"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "t2i-grey.safetensors"}}
    graph["hint"] = {"class_type": "TestHintImage", "inputs": {"seed": 7}}
    graph["apply"] = {"class_type": "ControlNetApply", "inputs": {
        "conditioning": ["6", 0], "control_net": ["cn", 0], "image": ["hint", 0], "strength": 0.9}}
    graph["3"]["inputs"]["positive"] = ["apply", 0]
    ours = run_ours(executor, graph)
    expected = reference(ours, adapters["t2i-grey.safetensors"], hint(7).mean(dim=1, keepdim=True), 0.9)
    assert difference(ours, expected) < TOLERANCE


def test_an_adapter_for_other_widths_fails_naming_both(setup):
    executor, _ = setup
    graph = base_graph()
    after = apply_advanced(graph, "a1", (["6", 0], ["7", 0]), "t2i-wide.safetensors", 5, 1.0)
    graph["3"]["inputs"].update(positive=after[0], negative=after[1])
    result, _ = run(executor, graph)
    assert result.status == "error"
    message = str(result.error.data())
    assert "t2i-wide.safetensors" in message and "tiny-sd15.safetensors" in message


@pytest.mark.parametrize("kind,in_channels,channels", [
    ("full_adapter", 3, (32, 64, 128, 128)),
    ("light_adapter", 3, (32, 64, 128)),
    ("full_adapter_xl", 3, (32, 64, 128, 128)),
    ("full_adapter_xl", 1, (32, 64, 128, 128)),
])
def test_every_kind_loads_from_both_layouts_into_the_weights_it_was_made_from(tmp_path, kind, in_channels, channels):
    made = tiny_adapter(4, in_channels, channels, kind, blocks=4 if kind == "light_adapter" else 2)
    for layout, tensors in (("original", original_layout(made)), ("diffusers", made.state_dict())):
        path = tmp_path / f"{layout}.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
        net = load_controlnet(path, torch.float32, "cpu").net
        fields = ("in_channels", "channels", "num_res_blocks", "downscale_factor", "adapter_type")
        assert {f: net.config[f] for f in fields} == {f: made.config[f] for f in fields}, layout
        got, want = net.state_dict(), made.state_dict()
        assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want), layout


def test_adapters_that_downsample_by_convolution_are_refused_by_name():
    state = original_layout(tiny_adapter(0))
    state["body.2.down_opt.op.weight"] = torch.zeros(64, 64, 3, 3)
    with pytest.raises(ValueError, match="odd.pth.*down_opt"):
        adapter_weights_and_config(state, "odd.pth")
