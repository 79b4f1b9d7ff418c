"""Upscale models on spandrel: loading any architecture it knows from .pth and .safetensors, tiled
upscaling that equals the model called directly, and clear refusals (bad files, sizes, torchvision)."""

from __future__ import annotations

import sys

import pytest
import safetensors.torch
import torch

from engine.context import Interrupted, InterruptHandle, RunContext
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes import upscale
from nodes.image_batch import ImageTooLargeError
from nodes.models.upscale_loading import (
    UpscaleModelError,
    import_spandrel,
    load_upscale_model,
    torchvision_problem,
)
from nodes.upscale import ImageUpscaleWithModel, UpscaleModelLoader, tile_starts, upscale_with_oom_retry

spandrel = import_spandrel()
from spandrel.architectures.Compact import Compact as SRVGGNetCompact  # noqa: E402 - after the import above
from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet  # noqa: E402
from spandrel.architectures.SPAN import SPAN  # noqa: E402


def tiny_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "esrgan-4x": RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4),
        "span-2x": SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2),
        "compact-2x": SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2),
    }


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """models/upscale_models with each tiny model as .pth (RRDBNet wrapped as BasicSR's releases
    are, under `params_ema`) and .safetensors; plus a corrupt and a foreign file."""
    root = tmp_path_factory.mktemp("models")
    folder = root / "upscale_models"
    folder.mkdir()
    for name, module in tiny_models().items():
        state = {k: v.contiguous() for k, v in module.state_dict().items()}
        torch.save({"params_ema": state} if name.startswith("esrgan") else state, folder / f"{name}.pth")
        safetensors.torch.save_file(state, folder / f"{name}.safetensors")
    (folder / "corrupt.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    torch.save({"weight": torch.zeros(3, 3)}, folder / "unknown.pth")
    return root


def ctx(models_root, **settings):
    events: list[tuple[str, dict]] = []
    context = RunContext(node_id="7", prompt_id="p", paths=Paths(models_dir=models_root), interrupt=InterruptHandle(),
                         emit=lambda event, data: events.append((event, data)), settings=settings)
    return context, events


def load(models_root, name):
    context, _ = ctx(models_root, precision="fp32", device="cpu")
    return UpscaleModelLoader().run(context, name)[0]


@pytest.mark.parametrize("name", ["esrgan-4x", "span-2x", "compact-2x"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_each_architecture_loads_from_either_format_and_matches_the_model_called_directly(models_dir, name, suffix):
    descriptor = load(models_dir, name + suffix)
    reference = tiny_models()[name].eval()
    assert descriptor.scale == int(name.split("-")[1][0])
    image = torch.rand(1, 12, 10, 3)
    context, _ = ctx(models_dir)
    (ours,) = ImageUpscaleWithModel().run(context, descriptor, image)
    with torch.no_grad():
        direct = reference(image.movedim(-1, 1)).clamp(0, 1).movedim(1, -1)
    assert ours.shape == (1, 12 * descriptor.scale, 10 * descriptor.scale, 3)
    torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-5)


def test_tiles_cover_the_image_whole_and_overlap():
    assert tile_starts(100, 512, 32) == [0]
    assert tile_starts(1024, 512, 32) == [0, 480, 512]
    assert tile_starts(40, 16, 4) == [0, 12, 24]


def test_tiled_output_is_close_to_the_whole_image_upscaled(models_dir):
    descriptor = load(models_dir, "compact-2x.safetensors")
    image = torch.rand(2, 3, 40, 36)
    tiles: list[tuple[int, int]] = []
    with torch.inference_mode():
        whole = descriptor(image[:1]), descriptor(image[1:])
        tiled = upscale_with_oom_retry(image, descriptor, 2, 3, tile=16, overlap=4,
                                       on_tile=lambda done, total: tiles.append((done, total)))
    assert tiles == [(i, 18) for i in range(1, 19)]  # 3 × 3 tiles per image
    # Only the blend across tile seams differs (each tile's border lacks its neighbours' context).
    assert (tiled - torch.cat(whole)).abs().mean() < 0.02


def test_node_reports_progress_per_tile_and_stops_between_tiles(models_dir, monkeypatch):
    monkeypatch.setattr(upscale, "TILE", 16)
    monkeypatch.setattr(upscale.upscale_with_oom_retry, "__defaults__", (16, 4, 8, None))
    descriptor = load(models_dir, "compact-2x.pth")
    context, events = ctx(models_dir)
    ImageUpscaleWithModel().run(context, descriptor, torch.rand(1, 20, 20, 3))
    assert [(e, d["value"], d["max"], d["node"]) for e, d in events] == [("progress", i, 4, "7") for i in (1, 2, 3, 4)]

    context, events = ctx(models_dir)
    context.emit = lambda event, data: context.interrupt.set() if data["value"] == 2 else None
    calls = []
    original = descriptor.__class__.__call__
    monkeypatch.setattr(descriptor.__class__, "__call__", lambda self, x: calls.append(1) or original(self, x))
    with pytest.raises(Interrupted):
        ImageUpscaleWithModel().run(context, descriptor, torch.rand(1, 20, 20, 3))
    assert len(calls) == 2


def test_out_of_memory_halves_the_tile_down_to_the_minimum():
    sizes = []

    def model(piece):
        sizes.append(piece.shape[-1])
        if piece.shape[-1] > 32:
            raise torch.OutOfMemoryError("out of memory")
        return piece.repeat_interleave(2, -1).repeat_interleave(2, -2)

    image = torch.rand(1, 3, 100, 100)
    out = upscale_with_oom_retry(image, model, 2, 3, tile=128, overlap=8, min_tile=32)
    assert sizes[:3] == [100, 64, 32]
    torch.testing.assert_close(out, image.repeat_interleave(2, -1).repeat_interleave(2, -2))
    with pytest.raises(torch.OutOfMemoryError):
        upscale_with_oom_retry(image, model, 2, 3, tile=128, overlap=8, min_tile=64)


def test_an_output_over_the_pixel_limit_is_refused_before_upscaling(models_dir):
    descriptor = load(models_dir, "esrgan-4x.pth")
    context, events = ctx(models_dir, max_latent_pixels=64 * 64)
    with pytest.raises(ImageTooLargeError, match=r"68×68 pixels × batch 1"):
        ImageUpscaleWithModel().run(context, descriptor, torch.rand(1, 17, 17, 3))
    assert events == []


@pytest.mark.parametrize("name, message", [
    ("corrupt.safetensors", r"corrupt\.safetensors"),
    ("unknown.pth", r"unknown\.pth: not an upscale model of any architecture spandrel"),
])
def test_a_corrupt_or_unknown_file_is_an_error_naming_it(models_dir, name, message):
    with pytest.raises(UpscaleModelError, match=message):
        load(models_dir, name)


def test_a_pickle_that_runs_code_is_refused(models_dir, tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Payload()}, path)
    with pytest.raises(UpscaleModelError, match=r"evil\.pth: cannot be read as a weights-only"):
        load_upscale_model(path)


def test_without_torchvision_the_architectures_that_need_it_are_refused_by_name(tmp_path):
    assert torchvision_problem() is not None  # this machine has no working torchvision
    assert "torchvision" not in sys.modules  # the stand-in did not outlive spandrel's import
    path = tmp_path / "big-lama.safetensors"
    # The key that identifies LaMa: the file is refused on it, before anything is built.
    safetensors.torch.save_file({"model.model.1.bn_l.running_mean": torch.zeros(4)}, path)
    with pytest.raises(UpscaleModelError, match=r"big-lama\.safetensors: a LaMa model, which spandrel runs only "
                                                r"with torchvision"):
        load_upscale_model(path)


def test_declared_like_comfyui_and_counted_as_a_model_load(models_dir):
    registry = NodeRegistry()
    registry.register_module(upscale)
    loader = registry.get("UpscaleModelLoader").object_info(Paths(models_dir=models_dir))
    assert loader["input"]["required"]["model_name"][0] == [
        "compact-2x.pth", "compact-2x.safetensors", "corrupt.safetensors", "esrgan-4x.pth",
        "esrgan-4x.safetensors", "span-2x.pth", "span-2x.safetensors", "unknown.pth"]
    assert (loader["output"], loader["category"]) == (["UPSCALE_MODEL"], "loaders")
    upscaler = registry.get("ImageUpscaleWithModel").object_info()
    assert list(upscaler["input"]["required"]) == ["upscale_model", "image"]
    assert (upscaler["output"], upscaler["category"]) == (["IMAGE"], "image/upscaling")
    assert registry.get("UpscaleModelLoader").model_inputs == {"model_name": "upscale_models"}


def test_without_spandrel_the_error_says_how_to_install_it(monkeypatch):
    import importlib.util

    from nodes.models import upscale_loading

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "spandrel"
                        else real_find_spec(name, *a))
    with pytest.raises(upscale_loading.UpscaleModelError, match="pip install --no-deps spandrel"):
        upscale_loading.import_spandrel.__wrapped__()
