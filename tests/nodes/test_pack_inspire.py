"""Inspire Pack: KSampler //Inspire's noise (the pack's prepare_noise formulas) and LoadImagesFromDir //Inspire,
which reads only inside the input folder."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths, UnsafePathError
from engine.registry import NodeRegistry
from nodes.conditioning_nodes import CLIPTextEncode
from nodes.loaders import CheckpointLoaderSimple
from nodes.packs import inspire
from nodes.packs.inspire import KSamplerInspire, LoadImagesFromDirInspire, prepare_noise
from nodes.sampler_nodes import KSampler, run_sampler

SHAPE = (3, 4, 8, 8)


def _ctx(paths):
    return RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings={})


def _randn(shape, seed):
    torch.manual_seed(seed)   # the pack's own call
    return torch.randn(shape)


def test_comfy_batch_mode_is_one_draw_for_the_batch():
    assert torch.equal(prepare_noise(SHAPE, 5, "CPU", "comfy"), _randn(SHAPE, 5))


def test_incremental_mode_draws_each_item_with_seed_plus_its_index():
    noise = prepare_noise(SHAPE, 5, "CPU", "incremental")
    for i in range(3):
        assert torch.equal(noise[i:i + 1], _randn((1, 4, 8, 8), 5 + i))


def test_a_linear_variation_blends_and_rescales_to_unit_variance():
    strength = 0.3
    noise = prepare_noise(SHAPE, 5, "CPU", "comfy", variation_seed=9, variation_strength=strength)
    expected = ((1 - strength) * _randn(SHAPE, 5) + strength * _randn((1, 4, 8, 8), 9)) \
        / math.sqrt((1 - strength) ** 2 + strength ** 2)
    torch.testing.assert_close(noise, expected, rtol=0, atol=1e-6)


def test_variation_strength_steps_up_per_item_in_variation_str_inc_mode():
    noise = prepare_noise(SHAPE, 5, "CPU", "variation str inc:0.05", variation_seed=9, variation_strength=0.1)
    base, variation = _randn((1, 4, 8, 8), 5), _randn((1, 4, 8, 8), 9)
    for i in range(3):
        s = 0.1 + 0.05 * i
        expected = ((1 - s) * base + s * variation) / math.sqrt((1 - s) ** 2 + s ** 2)
        torch.testing.assert_close(noise[i:i + 1], expected, rtol=0, atol=1e-6)


def test_slerp_variation_follows_the_great_circle_per_item():
    strength = 0.4
    noise = prepare_noise(SHAPE, 5, "CPU", "comfy", variation_seed=9, variation_strength=strength,
                          variation_method="slerp")
    low, high = _randn(SHAPE, 5).double().numpy(), _randn((1, 4, 8, 8), 9).double().numpy()
    for i in range(3):
        a, b = low[i].ravel(), high[0].ravel()
        omega = np.arccos(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b)))
        expected = (np.sin((1 - strength) * omega) * a + np.sin(strength * omega) * b) / np.sin(omega)
        np.testing.assert_allclose(noise[i].numpy().ravel(), expected, atol=1e-5)


def test_batch_indices_pick_draws_of_one_generator_in_order():
    noise = prepare_noise((2, 4, 8, 8), 5, "CPU", "comfy", batch_index=[2, 0])
    generator = torch.Generator().manual_seed(5)
    draws = [torch.randn((1, 4, 8, 8), generator=generator) for _ in range(3)]
    assert torch.equal(noise, torch.cat([draws[2], draws[0]]))


@pytest.fixture(scope="module")
def pipeline(models_dir, tmp_path_factory):
    ctx = _ctx(Paths(models_dir, tmp_path_factory.mktemp("input")))
    model, clip, _ = CheckpointLoaderSimple().run(ctx, ckpt_name="tiny-sd15.safetensors")
    positive = CLIPTextEncode().run(ctx, text="a red circle", clip=clip)[0]
    negative = CLIPTextEncode().run(ctx, text="", clip=clip)[0]
    return ctx, model, positive, negative


def _inspire(pipeline, latent, **kw):
    ctx, model, positive, negative = pipeline
    inputs = dict(seed=4, steps=2, cfg=7.0, sampler_name="euler_ancestral", scheduler="normal", denoise=1.0,
                  noise_mode="CPU", batch_seed_mode="comfy", variation_seed=0, variation_strength=0.0)
    inputs.update(kw)
    return KSamplerInspire().run(ctx, model, positive=positive, negative=negative, latent_image=latent,
                                 **inputs)[0]["samples"]


def test_without_variation_cpu_noise_equals_comfys_ksampler(pipeline):
    ctx, model, positive, negative = pipeline
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    expected = KSampler().run(ctx, model, 4, 2, 7.0, "euler_ancestral", "normal", positive, negative, latent,
                              1.0)[0]["samples"]
    torch.testing.assert_close(_inspire(pipeline, latent), expected, rtol=0, atol=0)


def test_variation_noise_and_internal_seed_reach_the_sampler(pipeline):
    ctx, model, positive, negative = pipeline
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    noise = prepare_noise((2, 4, 8, 8), 4, "CPU", "incremental", 8, 0.5, "slerp")
    expected = run_sampler(ctx, model, 11, 2, 7.0, "euler_ancestral", "normal", positive, negative, latent,
                           noise=noise)["samples"]
    out = _inspire(pipeline, latent, batch_seed_mode="incremental", variation_seed=8, variation_strength=0.5,
                   variation_method="slerp", internal_seed=11)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert not torch.equal(out, _inspire(pipeline, latent, batch_seed_mode="incremental"))


def test_the_declarations_keep_the_packs_names_and_order():
    registry = NodeRegistry()
    registry.register_module(inspire)
    info = registry.object_info()
    sampler = info["KSampler //Inspire"]
    assert sampler["input_order"]["required"] == [
        "model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative", "latent_image",
        "denoise", "noise_mode", "batch_seed_mode", "variation_seed", "variation_strength"]
    assert sampler["input_order"]["optional"] == ["variation_method", "scheduler_func_opt", "internal_seed"]
    assert sampler["input"]["required"]["noise_mode"][0] == ["GPU(=A1111)", "CPU"]
    loader = info["LoadImagesFromDir //Inspire"]
    assert loader["input_order"] == {"required": ["directory"], "optional": [
        "image_load_cap", "start_index", "load_always", "sort_criteria"]}
    assert loader["output"] == ["IMAGE", "MASK", "INT"]


# --- LoadImagesFromDir //Inspire ---------------------------------------------------------------------

@pytest.fixture
def folder_paths(tmp_path):
    shots = tmp_path / "input" / "shots"
    shots.mkdir(parents=True)
    Image.new("RGB", (16, 8), (255, 0, 0)).save(shots / "b.png")
    rgba = Image.new("RGBA", (32, 16), (0, 0, 255, 255))
    rgba.putpixel((0, 0), (0, 0, 255, 0))
    rgba.save(shots / "a.png")
    (shots / "notes.txt").write_text("not an image")
    (tmp_path / "secret").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "secret" / "x.png")
    return Paths(tmp_path / "models", tmp_path / "input")


def test_the_folders_images_load_sorted_as_one_batch_at_the_first_ones_size(folder_paths):
    images, masks, count = LoadImagesFromDirInspire().run(_ctx(folder_paths), "shots")
    assert count == 2 and images.shape == (2, 16, 32, 3) and masks.shape == (2, 16, 32)
    assert images[0, 5, 5].tolist() == [0.0, 0.0, 1.0] and images[1, 5, 5].tolist() == [1.0, 0.0, 0.0]
    assert masks[0, 0, 0] == 1.0 and masks[0, 5, 5] == 0.0 and masks[1].abs().sum() == 0


def test_start_index_and_cap_select_files_and_nothing_gives_the_packs_placeholder(folder_paths):
    images, _, count = LoadImagesFromDirInspire().run(_ctx(folder_paths), "shots", image_load_cap=1, start_index=1)
    assert count == 1 and images.shape == (1, 8, 16, 3)
    images, masks, count = LoadImagesFromDirInspire().run(_ctx(folder_paths), "shots", start_index=5)
    assert count == 0 and images.shape == (1, 64, 64, 3) and masks.shape == (1, 64, 64)


@pytest.mark.parametrize("directory", ["../secret", "shots/../../secret", "/etc", "/"])
def test_folders_outside_the_input_folder_are_refused(folder_paths, directory):
    loader = LoadImagesFromDirInspire()
    with pytest.raises(UnsafePathError, match="input folder"):
        loader.run(_ctx(folder_paths), directory)
    assert "input folder" in loader.validate_inputs(folder_paths, directory)


def test_an_absolute_path_inside_the_input_folder_and_symlinks_out(folder_paths):
    inside = str((folder_paths.input_dir / "shots").resolve())
    assert LoadImagesFromDirInspire().run(_ctx(folder_paths), inside)[2] == 2
    (folder_paths.input_dir / "link").symlink_to(folder_paths.input_dir.parent / "secret")
    with pytest.raises(UnsafePathError):
        LoadImagesFromDirInspire().run(_ctx(folder_paths), "link")


def test_inspires_own_schedulers_are_offered_and_refused_with_a_reason(pipeline):
    ctx, _, _, _ = pipeline
    assert KSamplerInspire().validate_inputs(ctx.paths, scheduler="normal") is True
    message = KSamplerInspire().validate_inputs(ctx.paths, scheduler="AYS SD1")
    assert "AYS SD1" in message and "not available" in message
    with pytest.raises(ValueError, match="AYS SDXL"):
        _inspire(pipeline, {"samples": torch.zeros(1, 4, 8, 8)}, scheduler="AYS SDXL")
