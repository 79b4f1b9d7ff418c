"""Latent nodes: empty latents, upscaling (including bislerp), the noise mask, and the latent size cap."""

import pytest
import torch

from engine.context import InterruptHandle, RunContext
from engine.execute import Executor, ValidationFailed
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.workflow import Workflow
from nodes.latent import (
    DEFAULT_MAX_LATENT_PIXELS,
    EmptyLatentImage,
    LatentTooLargeError,
    LatentUpscale,
    LatentUpscaleBy,
    SetLatentNoiseMask,
)
from tests.nodes.capture import Capture


def ctx(**settings):
    return RunContext(node_id="1", prompt_id="test", paths=Paths(), interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings=settings)


def latent(batch=1, height=8, width=8, **extra):
    samples = torch.arange(batch * 4 * height * width, dtype=torch.float32).reshape(batch, 4, height, width)
    return {"samples": samples, **extra}


@pytest.fixture
def executor(tmp_path):
    registry = NodeRegistry([EmptyLatentImage, LatentUpscale, Capture])
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    return Executor(registry, paths, settings={"captured": [], "max_latent_pixels": 512 * 512 * 2})


def empty_graph(width, height, batch_size):
    return Workflow.from_api({
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch_size}},
        "2": {"class_type": "Capture", "inputs": {"value": ["1", 0]}}})


# --- EmptyLatentImage -----------------------------------------------------------------------------------

def test_empty_latent_is_zeros_at_one_eighth_resolution():
    (out,) = EmptyLatentImage().run(ctx(), width=96, height=64, batch_size=2)
    assert set(out) == {"samples"}
    assert out["samples"].shape == (2, 4, 8, 12) and out["samples"].dtype == torch.float32
    assert not out["samples"].any()
    assert EmptyLatentImage().run(ctx(), width=524, height=16, batch_size=1)[0]["samples"].shape == (1, 4, 2, 65)


def test_empty_latent_declaration_matches_comfyui():
    info = EmptyLatentImage.__node_declaration__.object_info()
    required = info["input"]["required"]
    assert list(required) == ["width", "height", "batch_size"]
    assert {k: v for k, v in required["width"][1].items() if k != "tooltip"} == {
        "default": 512, "min": 16, "max": 16384, "step": 8}
    assert {k: v for k, v in required["batch_size"][1].items() if k != "tooltip"} == {
        "default": 1, "min": 1, "max": 4096}
    assert info["output"] == ["LATENT"] and info["display_name"] == "Empty Latent Image"


# --- The latent size cap --------------------------------------------------------------------------------

def test_cap_comes_from_settings_and_names_the_inputs():
    with pytest.raises(LatentTooLargeError, match="reduce width, height or batch_size") as error:
        EmptyLatentImage().run(ctx(max_latent_pixels=512 * 512), width=512, height=512, batch_size=2)
    assert "512×512 pixels × batch 2 = 524,288 pixels exceeds the limit of 262,144" in str(error.value)
    assert "'max_latent_pixels'" in str(error.value)
    EmptyLatentImage().run(ctx(max_latent_pixels=512 * 512), width=512, height=512, batch_size=1)


def test_default_cap_is_4096_squared_times_4():
    assert DEFAULT_MAX_LATENT_PIXELS == 4096 * 4096 * 4
    with pytest.raises(LatentTooLargeError):
        EmptyLatentImage().run(ctx(), width=16384, height=16384, batch_size=4096)


def test_validation_refuses_oversized_constants_before_anything_runs(executor):
    node = EmptyLatentImage()
    assert node.validate_inputs(None, width=4096, height=4096, batch_size=4) is None
    assert "reduce width, height or batch_size" in node.validate_inputs(None, width=16384, height=16384,
                                                                       batch_size=4096)
    result = executor.validate(empty_graph(16384, 16384, 4096))
    error = result.node_errors["1"]["errors"][0]
    assert error["type"] == "custom_validation_failed" and "latent too large" in error["message"]


def test_executor_refuses_constant_sizes_over_the_configured_cap_at_validation(executor):
    with pytest.raises(ValidationFailed) as refused:
        executor.execute(empty_graph(512, 512, 4))
    assert "exceeds the limit of 524,288" in str(refused.value.result.node_errors)
    assert executor.execute(empty_graph(512, 512, 2)).status == "success"


def test_upscale_checks_the_cap_with_the_incoming_batch():
    with pytest.raises(LatentTooLargeError, match="reduce width or height"):
        LatentUpscale().run(ctx(max_latent_pixels=1024 * 1024), latent(batch=8), "bilinear", 1024, 1024, "disabled")
    with pytest.raises(LatentTooLargeError, match="reduce scale_by"):
        LatentUpscaleBy().run(ctx(max_latent_pixels=64 * 64), latent(), "bilinear", 2.0)
    assert "reduce width or height" in LatentUpscale().validate_inputs(None, width=16384, height=16384)
    assert LatentUpscale().validate_inputs(None, width=0, height=16384) is None  # depends on the latent


# --- LatentUpscale / LatentUpscaleBy --------------------------------------------------------------------

def test_upscale_declarations_match_comfyui():
    up = LatentUpscale.__node_declaration__.object_info()["input"]["required"]
    assert list(up) == ["samples", "upscale_method", "width", "height", "crop"]
    assert up["upscale_method"] == [["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]]
    assert up["width"] == ["INT", {"default": 512, "min": 0, "max": 16384, "step": 8}]
    assert up["crop"] == [["disabled", "center"]]
    by = LatentUpscaleBy.__node_declaration__.object_info()["input"]["required"]
    assert by["scale_by"] == ["FLOAT", {"default": 1.5, "min": 0.01, "max": 8.0, "step": 0.01}]


def test_upscale_to_pixels_divides_by_8_and_keeps_the_other_keys():
    source = latent(height=4, width=4, noise_mask=torch.ones(1, 1, 32, 32), batch_index=[3])
    (out,) = LatentUpscale().run(ctx(), source, "nearest-exact", 64, 64, "disabled")
    assert torch.equal(out["samples"], source["samples"].repeat_interleave(2, 2).repeat_interleave(2, 3))
    assert out["noise_mask"] is source["noise_mask"] and out["batch_index"] == [3]
    assert out is not source and source["samples"].shape == (1, 4, 4, 4)


def test_upscale_sizes_follow_comfyui_rules():
    source = latent(height=8, width=16)

    def size(w, h):
        return tuple(LatentUpscale().run(ctx(), source, "bilinear", w, h, "disabled")[0]["samples"].shape)

    assert size(0, 128) == (1, 4, 16, 32)  # a 0 side follows the aspect ratio
    assert size(256, 0) == (1, 4, 16, 32)
    assert size(16, 16) == (1, 4, 8, 8)  # each side is at least 64 pixels
    assert LatentUpscale().run(ctx(), source, "bilinear", 0, 0, "disabled")[0] is source


def test_center_crop_takes_the_middle_of_the_latent():
    source = latent(height=2, width=6)
    (out,) = LatentUpscale().run(ctx(), source, "nearest-exact", 64, 64, "center")
    middle = source["samples"][:, :, :, 2:4]
    assert torch.equal(out["samples"], middle.repeat_interleave(4, 2).repeat_interleave(4, 3))


def test_upscale_by_rounds_the_latent_size():
    (out,) = LatentUpscaleBy().run(ctx(), latent(height=5, width=8), "bicubic", 1.5)
    assert out["samples"].shape == (1, 4, 8, 12)  # round(7.5) = 8


def test_bislerp_keeps_vector_lengths_where_bilinear_shrinks_them():
    samples = torch.zeros((1, 4, 1, 2))
    samples[0, 0, 0, 0] = 1.0  # two orthogonal unit vectors side by side
    samples[0, 1, 0, 1] = 1.0
    (slerped,) = LatentUpscale().run(ctx(), {"samples": samples}, "bislerp", 64, 64, "disabled")
    (linear,) = LatentUpscale().run(ctx(), {"samples": samples}, "bilinear", 64, 64, "disabled")
    assert slerped["samples"].shape == (1, 4, 8, 8)
    assert torch.allclose(slerped["samples"].norm(dim=1), torch.ones(1, 8, 8), atol=1e-5)
    assert linear["samples"].norm(dim=1).min() < 0.75


def test_bislerp_at_the_same_size_is_the_identity():
    torch.manual_seed(0)
    source = {"samples": torch.randn(2, 4, 5, 7)}
    (out,) = LatentUpscaleBy().run(ctx(), source, "bislerp", 1.0)
    assert torch.allclose(out["samples"], source["samples"], atol=1e-5)


# --- SetLatentNoiseMask ---------------------------------------------------------------------------------

def test_noise_mask_is_reshaped_to_batch_channel_height_width():
    source = latent()
    (out,) = SetLatentNoiseMask().run(ctx(), source, torch.ones(16, 24))
    assert out["noise_mask"].shape == (1, 1, 16, 24) and out["samples"] is source["samples"]
    (batched,) = SetLatentNoiseMask().run(ctx(), source, torch.ones(3, 16, 24))
    assert batched["noise_mask"].shape == (3, 1, 16, 24)
    assert "noise_mask" not in source
    info = SetLatentNoiseMask.__node_declaration__.object_info()
    assert info["input"]["required"] == {"samples": ["LATENT"], "mask": ["MASK"]}
    assert info["category"] == "latent/inpaint"
