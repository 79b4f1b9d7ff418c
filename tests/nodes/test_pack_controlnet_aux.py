"""comfyui_controlnet_aux's model-free preprocessors compute what the pack's OpenCV code computes (checked on
small images against hand-written references of its formulas); the model-based ones say they are unsupported."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes.image_filters import Canny
from nodes.packs import controlnet_aux as aux
from tests.nodes.comfy_controlnet_packs_object_info import CONTROLNET_AUX_NODES
from tests.nodes.test_pack_object_info import comparable

CTX = RunContext(node_id="1", prompt_id="test", paths=Paths("/nonexistent"), interrupt=InterruptHandle(),
                 emit=lambda event, data: None, settings={})


def image_of(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] → IMAGE [1, H, W, 3] whose truncation gives back exactly these values."""
    return torch.from_numpy((pixels.astype(np.float32) + 0.5) / 255.0)[None]


def as_uint8(image: torch.Tensor) -> np.ndarray:
    return (image[0].numpy() * 255.0).round().astype(np.int64)


@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    registry.load_package("nodes.packs")
    return registry.object_info()


@pytest.mark.parametrize("class_type", sorted(CONTROLNET_AUX_NODES))
def test_declarations_match_the_pack(object_info, class_type):
    ours, theirs = object_info[class_type], CONTROLNET_AUX_NODES[class_type]
    for section in ("required", "optional"):
        expected, actual = theirs.get(section, {}), ours["input"].get(section, {})
        assert list(actual) == list(expected), f"{section} input order"
        for name, entry in expected.items():
            assert comparable(actual[name]) == comparable(entry), name
    assert (ours["output"], ours["output_name"]) == (theirs["output"], theirs["output_name"])
    assert ours["category"].startswith("ControlNet Preprocessors")
    assert ours["python_module"] == "nodes.packs.controlnet_aux"


def test_canny_is_kornias_as_comfyui_core_at_the_detect_resolution():
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[16:48, 20:40] = 220
    image = image_of(pixels)
    ours = aux.CannyEdgePreprocessor().run(CTX, image, 100, 200, 64)[0]
    core = Canny().run(CTX, torch.from_numpy(pixels.astype(np.float32) / 255.0)[None], 100 / 255, 200 / 255)[0]
    assert torch.equal(ours, core)
    assert ours.sum() > 0
    # thresholds given the wrong way round are swapped, as OpenCV does
    assert torch.equal(aux.CannyEdgePreprocessor().run(CTX, image, 200, 100, 64)[0], ours)


def test_outputs_keep_the_detect_resolution_of_the_short_side():
    image = torch.rand(2, 40, 60, 3)
    out = aux.BinaryPreprocessor().run(CTX, image, 100, 128)[0]
    assert tuple(out.shape) == (2, 128, 192, 3)


def test_color_is_one_colour_per_64_pixel_cell():
    pixels = np.zeros((128, 128, 3), np.uint8)
    quadrants = [(200, 10, 10), (10, 200, 10), (10, 10, 200), (250, 250, 0)]
    for (y, x), colour in zip([(0, 0), (0, 64), (64, 0), (64, 64)], quadrants):
        pixels[y:y + 64, x:x + 64] = colour
    out = aux.ColorPreprocessor().run(CTX, image_of(pixels), 128)[0]
    assert np.array_equal(as_uint8(out), pixels)
    noisy = aux.ColorPreprocessor().run(CTX, torch.rand(1, 128, 256, 3), 128)[0][0]
    cells = noisy.reshape(2, 64, 4, 64, 3)
    assert torch.equal(cells, cells[:, :1, :, :1].expand_as(cells))


def test_shuffle_repeats_with_a_seed_and_moves_content_over_the_whole_image():
    ramp = np.broadcast_to(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (64, 64, 3)).copy()
    image = image_of(ramp)
    first = aux.ShufflePreprocessor().run(CTX, image, 64, 7)[0]
    assert torch.equal(first, aux.ShufflePreprocessor().run(CTX, image, 64, 7)[0])
    assert not torch.equal(first, aux.ShufflePreprocessor().run(CTX, image, 64, 8)[0])
    # a horizontal ramp sampled at the flow's x positions shows the flow: min-max normalised, so 0 and 255 occur
    values = as_uint8(first)[..., 0]
    assert values.min() <= 4 and values.max() >= 251
    flat = image_of(np.full((64, 64, 3), 90, np.uint8))
    assert np.all(as_uint8(aux.ShufflePreprocessor().run(CTX, flat, 64, 3)[0]) == 90)


def test_binary_thresholds_the_gray_level_and_uses_otsu_at_0():
    levels = np.array([99, 100, 101, 180], np.uint8)
    pixels = np.repeat(np.repeat(levels, 16)[None, :, None], 64, axis=0).repeat(3, axis=2)
    out = as_uint8(aux.BinaryPreprocessor().run(CTX, image_of(pixels), 100, 64)[0])[0, ::16, 0]
    assert out.tolist() == [0, 0, 255, 255]
    bimodal = np.where(np.arange(64)[None, :, None] < 32, 40, 210).repeat(64, 0).repeat(3, 2).astype(np.uint8)
    out = as_uint8(aux.BinaryPreprocessor().run(CTX, image_of(bimodal), 0, 64)[0])[0, :, 0]
    assert out[:32].tolist() == [0] * 32 and out[32:].tolist() == [255] * 32
    assert 40 <= aux.otsu_threshold(torch.from_numpy(bimodal[..., 0]).float()) < 210


def opencv_pyr_up_1d(row: np.ndarray) -> np.ndarray:
    """OpenCV's pyrUp along one axis, with its border rules, times 8."""
    n, out = len(row), np.zeros(2 * len(row))
    for i in range(n):
        left, right = row[abs(i - 1)], row[i + 1] if i + 1 < n else row[n - 1]
        out[2 * i] = left + 6 * row[i] + right
        out[2 * i + 1] = 4 * (row[i] + right)
    return out


def test_pyr_up_is_opencvs():
    source = np.random.default_rng(0).integers(0, 256, (5, 7)).astype(np.float64)
    expected = np.apply_along_axis(opencv_pyr_up_1d, 1, np.apply_along_axis(opencv_pyr_up_1d, 0, source)) / 64
    ours = aux.pyr_up(torch.from_numpy(source).float()[None, None])[0, 0].numpy()
    assert np.array_equal(ours, np.clip(np.round(expected), 0, 255))


def test_tile_shrinks_and_grows_back_on_sizes_rounded_to_64():
    out = aux.TilePreprocessor().run(CTX, torch.rand(1, 100, 150, 3), 3)[0]
    assert tuple(out.shape) == (1, 128, 128, 3)
    flat = image_of(np.full((64, 64, 3), 77, np.uint8))
    assert np.all(as_uint8(aux.TilePreprocessor().run(CTX, flat, 2)[0]) == 77)
    with pytest.raises(ValueError, match="pyrUp_iters 10"):
        aux.TilePreprocessor().run(CTX, flat, 10)


def test_lineart_standard_is_the_packs_formula():
    rng = np.random.default_rng(1)
    pixels = np.full((64, 64, 3), 230, np.uint8)
    pixels[20:23, 5:60] = 30
    pixels[30:60, 40:42] = rng.integers(0, 60, (30, 2, 3))
    out = as_uint8(aux.LineartStandardPreprocessor().run(CTX, image_of(pixels), 6.0, 8, 64)[0])
    x = pixels.astype(np.float32)
    blurred = np.stack([gaussian_filter(x[..., c], 6.0, mode="mirror", truncate=4.0) for c in range(3)], -1)
    intensity = np.min(blurred - x, axis=2).clip(0, 255)
    intensity /= max(16, np.median(intensity[intensity > 8]))
    expected = (intensity * 127).clip(0, 255).astype(np.uint8)
    assert np.abs(out[..., 0] - expected.astype(np.int64)).max() <= 1
    assert np.array_equal(out[..., 0], out[..., 2])
    assert out[21, 30, 0] > 100 and out[5, 5, 0] == 0


@pytest.mark.parametrize("node_class", [aux.MiDaSDepthMapPreprocessor, aux.ZoeDepthMapPreprocessor,
                                        aux.LineArtPreprocessor, aux.DWPreprocessor])
def test_model_based_preprocessors_say_they_are_not_supported(node_class):
    with pytest.raises(aux.AnnotatorModelMissing, match="needs an annotator model.*LineartStandardPreprocessor"):
        node_class().run(CTX, torch.rand(1, 64, 64, 3))


def test_aio_runs_the_named_preprocessor_with_its_defaults():
    image = torch.rand(1, 64, 64, 3)
    assert aux.AIOPreprocessor().run(CTX, image, "none", 64)[0] is image
    assert torch.equal(aux.AIOPreprocessor().run(CTX, image, "BinaryPreprocessor", 64)[0],
                       aux.BinaryPreprocessor().run(CTX, image, 100, 64)[0])
    with pytest.raises(aux.AnnotatorModelMissing, match="Zoe-DepthMapPreprocessor"):
        aux.AIOPreprocessor().run(CTX, image, "Zoe-DepthMapPreprocessor", 64)
