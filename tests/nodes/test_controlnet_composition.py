"""ControlNets combined with the rest of a workflow: batches (equal to the pipeline on a batch), inpainting
masks (the kept region stays the input), area conditioning, a hires-fix second pass at twice the size, and the
two ComfyUI nodes that wrap Apply ControlNet (the AliMama inpainting apply, the union type)."""

from __future__ import annotations

import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionControlNetPipeline

from engine.config import EngineConfig, build_registry
from engine.context import RunContext
from engine.declare import Out, node
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.types import MASK
from nodes.controlnet import SetUnionControlNetType
from nodes.models.controlnet_loading import ControlNetHandle
from nodes.sampling import ksampler_sigmas
from tests.nodes.test_controlnet import STEPS, TestHintImage, apply_advanced, base_graph, hint, run_ours, setup
from tests.nodes.test_reference_diffusers import (
    CFG,
    LINSPACE,
    SD_SCHEDULE,
    SEED,
    SIZE,
    TOLERANCE,
    CaptureValue,
    comfyui_start,
    pipeline_parts,
)

__all__ = ["setup"]  # test_controlnet's module fixture: its tiny checkpoint and ControlNets


@node("TestLeftHalfMask", outputs=[Out(MASK)])
class TestLeftHalfMask:
    """1 (regenerate) on the left half of a SIZE × SIZE image, 0 (keep) on the right."""

    def run(self, ctx: RunContext):
        mask = torch.zeros(1, SIZE, SIZE)
        mask[:, :, : SIZE // 2] = 1.0
        return (mask,)


@pytest.fixture(scope="module")
def executor(setup):
    _, _, folder, _ = setup
    root = folder.parent.parent
    registry = NodeRegistry([CaptureValue, TestHintImage, TestLeftHalfMask,
                             *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    return Executor(registry, Paths(root / "models", root / "input", root / "output", root / "temp"))


def controlled(graph: dict, name: str = "original.safetensors", strength: float = 0.8) -> dict:
    after = apply_advanced(graph, "a1", (["6", 0], ["7", 0]), name, 5, strength)
    graph["3"]["inputs"].update(positive=after[0], negative=after[1])
    return graph


def test_a_batch_of_two_equals_the_pipeline_on_the_same_batch(setup, executor):
    _, nets, *_ = setup
    graph = controlled(base_graph())
    graph["5"]["inputs"]["batch_size"] = 2
    ours = run_ours(executor, graph)
    model = ours["model"]
    sigmas = ksampler_sigmas(model.model_sampling, "normal", STEPS)
    noise = torch.randn((2, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED))
    start = comfyui_start(noise, float(sigmas[0]), model.model_sampling.sigma_max)
    scheduler = EulerDiscreteScheduler(**SD_SCHEDULE, **LINSPACE)
    pipe = StableDiffusionControlNetPipeline(**pipeline_parts(ours), controlnet=nets["original.safetensors"],
                                             scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(prompt_embeds=ours["positive"][0].embeds.repeat(2, 1, 1),
                    negative_prompt_embeds=ours["negative"][0].embeds.repeat(2, 1, 1), image=hint(5).repeat(2, 1, 1, 1),
                    height=SIZE, width=SIZE, guidance_scale=CFG, num_inference_steps=STEPS,
                    latents=start / scheduler.init_noise_sigma, controlnet_conditioning_scale=0.8,
                    output_type="latent").images
    got = ours["latent"]["samples"] * model.latent_scale
    assert got.shape == expected.shape == (2, 4, SIZE // 8, SIZE // 8)
    assert float((got - expected).abs().max()) < TOLERANCE


def inpainting(graph: dict) -> dict:
    graph["mask"] = {"class_type": "TestLeftHalfMask", "inputs": {}}
    graph["masked"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["5", 0], "mask": ["mask", 0]}}
    graph["3"]["inputs"]["latent_image"] = ["masked", 0]
    return graph


def test_with_an_inpainting_mask_the_kept_region_stays_and_control_changes_the_rest(executor):
    ours = run_ours(executor, inpainting(controlled(base_graph())))["latent"]["samples"]
    plain = run_ours(executor, inpainting(base_graph()))["latent"]["samples"]
    kept = (slice(None), slice(None), slice(None), slice(SIZE // 16, None))
    assert float(ours[kept].abs().max()) < 1e-6  # the input latent (zeros), up to the mask's bilinear edge
    assert float((ours - plain)[:, :, :, : SIZE // 16 - 1].abs().max()) > 100 * TOLERANCE


def test_controlnet_on_area_conditioning_acts_in_its_area(executor):
    """A 64-pixel area on the right of a 128-pixel image: the hint is fitted to the area, as ComfyUI does."""
    def graph(with_control: bool) -> dict:
        g = base_graph()
        g["5"]["inputs"]["width"] = 2 * SIZE
        g["area"] = {"class_type": "ConditioningSetArea", "inputs": {
            "conditioning": ["6", 0], "width": SIZE, "height": SIZE, "x": SIZE, "y": 0, "strength": 1.0}}
        g["3"]["inputs"]["positive"] = ["area", 0]
        if with_control:
            g["cn"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "original.safetensors"}}
            g["hint"] = {"class_type": "TestHintImage", "inputs": {"seed": 5}}
            g["apply"] = {"class_type": "ControlNetApply", "inputs": {
                "conditioning": ["area", 0], "control_net": ["cn", 0], "image": ["hint", 0], "strength": 1.0}}
            g["3"]["inputs"]["positive"] = ["apply", 0]
        return g

    ours = run_ours(executor, graph(True))["latent"]["samples"]
    plain = run_ours(executor, graph(False))["latent"]["samples"]
    assert ours.shape == (1, 4, SIZE // 8, SIZE // 4) and torch.isfinite(ours).all()
    assert float((ours - plain)[..., SIZE // 8:].abs().max()) > 100 * TOLERANCE


def test_a_hires_fix_second_pass_is_controlled_at_twice_the_size(executor):
    def graph(with_control: bool) -> dict:
        g = controlled(base_graph()) if with_control else base_graph()
        g["up"] = {"class_type": "LatentUpscaleBy", "inputs": {
            "samples": ["3", 0], "upscale_method": "nearest-exact", "scale_by": 2.0}}
        g["second"] = {"class_type": "KSampler", "inputs": {**g["3"]["inputs"], "latent_image": ["up", 0],
                                                           "denoise": 0.5}}
        g["capture_latent"]["inputs"]["value"] = ["second", 0]
        return g

    ours = run_ours(executor, graph(True))["latent"]["samples"]
    plain = run_ours(executor, graph(False))["latent"]["samples"]
    assert ours.shape == (1, 4, SIZE // 4, SIZE // 4)
    assert float((ours - plain).abs().max()) > 100 * TOLERANCE


def test_the_alimama_inpainting_apply_with_a_mask_free_controlnet_is_apply_controlnet(executor):
    plain = run_ours(executor, controlled(base_graph()))["latent"]["samples"]
    graph = controlled(base_graph())
    graph["mask"] = {"class_type": "TestLeftHalfMask", "inputs": {}}
    graph["a1"] = {"class_type": "ControlNetInpaintingAliMamaApply", "inputs": {
        **graph["a1"]["inputs"], "vae": ["4", 2], "mask": ["mask", 0]}}
    assert torch.equal(run_ours(executor, graph)["latent"]["samples"], plain)


def test_set_union_type_records_comfyuis_type_number_and_auto_clears_it():
    handle = ControlNetHandle(net=None, source="union.safetensors")
    typed = SetUnionControlNetType().run(None, handle, "canny/lineart/anime_lineart/mlsd")[0]  # type: ignore[arg-type]
    assert typed.control_type == (3,) and handle.control_type == ()
    assert SetUnionControlNetType().run(None, typed, "auto")[0].control_type == ()  # type: ignore[arg-type]
