"""ComfyUI's image toolbox nodes: declared as ComfyUI declares them, and doing what its nodes do."""

import kornia
import numpy as np
import pytest
import torch

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.ui_format import ui_to_api
from nodes import image_animated, image_batch, image_filters
from nodes.image_batch import (
    GetImageSize,
    ImageBatch,
    ImageColorToMask,
    ImageCompositeMasked,
    ImageCrop,
    ImageFlip,
    ImageFromBatch,
    ImageRotate,
    ImageScaleToMaxDimension,
    ImageStitch,
    ImageTooLargeError,
    RepeatImageBatch,
)
from nodes.image_filters import Canny, ImageBlend, ImageBlur, ImageQuantize, ImageSharpen
from tests.nodes.comfy_image_object_info import COMFY_IMAGE_NODES

NUMBER_OPTIONS = ("default", "min", "max", "step")


@pytest.fixture(scope="module")
def registry():
    registry = NodeRegistry()
    for module in (image_batch, image_filters, image_animated):
        registry.register_module(module)
    return registry


def ctx(tmp_path=None, **settings):
    root = tmp_path or "/nonexistent"
    paths = Paths(f"{root}/models", f"{root}/input", f"{root}/output", f"{root}/temp")
    return RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings=settings)


def pixels(rows):
    """A batch of one image from nested [H][W][C] values."""
    return torch.tensor([rows], dtype=torch.float32)


def ramp(batch=1, height=4, width=6, channels=3):
    values = torch.arange(batch * height * width * channels, dtype=torch.float32)
    return (values / values.numel()).reshape(batch, height, width, channels)


# --- declarations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("class_type", sorted(COMFY_IMAGE_NODES))
def test_object_info_matches_comfyui(registry, class_type):
    expected = COMFY_IMAGE_NODES[class_type]
    info = registry.object_info()[class_type]
    for section in ("required", "optional"):
        declared = info["input"].get(section, {})
        wanted = expected.get(section, [])
        assert list(declared) == [name for name, _, _ in wanted], section
        assert info["input_order"].get(section, []) == [name for name, _, _ in wanted]
        for name, comfy_type, options in wanted:
            ours = declared[name]
            assert ours[0] == comfy_type, name
            ours_options = ours[1] if len(ours) > 1 else {}
            assert {k: ours_options[k] for k in NUMBER_OPTIONS if k in ours_options} == options, name
    assert list(zip(info["output"], info["output_name"])) == expected["outputs"]
    assert info["output_node"] == expected.get("output_node", False)
    assert sorted(info["input"].get("hidden", {})) == sorted(expected.get("hidden", []))


def test_ui_widget_values_convert_in_comfyui_order(registry):
    ui = {"nodes": [{"id": 1, "type": "ImageStitch", "mode": 0,
                     "inputs": [{"name": "image1", "type": "IMAGE", "link": None}],
                     "widgets_values": ["down", False, 4, "red"]}], "links": []}
    inputs = ui_to_api(ui, registry).to_api()["1"]["inputs"]
    assert inputs == {"direction": "down", "match_image_size": False, "spacing_width": 4, "spacing_color": "red"}


# --- filters --------------------------------------------------------------------------------------

def test_blend_modes_mix_by_factor_and_clamp():
    a, b = pixels([[[0.2, 0.6, 1.0]]]), pixels([[[0.5, 0.5, 0.5]]])
    run = ImageBlend().run
    assert torch.allclose(run(ctx(), a, b, 0.5, "normal")[0], pixels([[[0.35, 0.55, 0.75]]]))
    assert torch.allclose(run(ctx(), a, b, 1.0, "multiply")[0], pixels([[[0.1, 0.3, 0.5]]]))
    assert torch.allclose(run(ctx(), a, b, 1.0, "screen")[0], pixels([[[0.6, 0.8, 1.0]]]))
    assert torch.allclose(run(ctx(), b, a, 1.0, "difference")[0], pixels([[[0.3, 0.0, 0.0]]]))
    assert torch.equal(run(ctx(), a, b, 0.0, "overlay")[0], a)


def test_blend_fits_image2_to_image1_size_and_batch():
    image1 = torch.zeros(3, 4, 6, 3)
    image2 = torch.ones(1, 8, 8, 3)
    out = ImageBlend().run(ctx(), image1, image2, 1.0, "normal")[0]
    assert out.shape == (3, 4, 6, 3) and torch.allclose(out, torch.ones_like(out))
    longer = torch.arange(5.0).reshape(5, 1, 1, 1).expand(5, 8, 8, 3) / 4
    out = ImageBlend().run(ctx(), torch.zeros(2, 4, 6, 3), longer, 1.0, "normal")[0]
    assert out.shape == (2, 4, 6, 3) and torch.allclose(out[:, 0, 0, 0], torch.tensor([0.0, 0.25]))


def test_blur_keeps_flat_areas_and_spreads_a_point_symmetrically():
    flat = torch.full((1, 5, 5, 3), 0.4)
    assert torch.allclose(ImageBlur().run(ctx(), flat, 2, 1.0)[0], flat)
    point = torch.zeros(1, 7, 7, 1)
    point[0, 3, 3, 0] = 1.0
    out = ImageBlur().run(ctx(), point, 1, 1.0)[0][0, ..., 0]
    # ComfyUI's kernel spans -1..1 whatever the radius: neighbours weigh exp(-1/2) of the centre.
    weights = torch.tensor([[np.exp(-1.0), np.exp(-0.5), np.exp(-1.0)], [np.exp(-0.5), 1.0, np.exp(-0.5)],
                            [np.exp(-1.0), np.exp(-0.5), np.exp(-1.0)]], dtype=torch.float32)
    assert torch.allclose(out[2:5, 2:5], weights.flip(0, 1) / weights.sum())
    assert out.sum().item() == pytest.approx(1.0) and out[0].abs().sum() == 0


def test_blur_of_an_image_smaller_than_its_radius_keeps_its_size():
    assert ImageBlur().run(ctx(), ramp(height=2, width=3), 5, 2.0)[0].shape == (1, 2, 3, 3)


def test_sharpen_raises_contrast_at_an_edge_and_leaves_flat_areas():
    edge = torch.zeros(1, 6, 6, 3)
    edge[:, :, 3:] = 0.5
    out = ImageSharpen().run(ctx(), edge, 1, 1.0, 0.5)[0]
    assert out[0, 2, 2, 0] == 0.0 and out[0, 2, 3, 0] > 0.5 and out[0, 2, 5, 0] == pytest.approx(0.5)
    assert torch.allclose(ImageSharpen().run(ctx(), edge, 2, 1.0, 0.0)[0], edge)


def test_quantize_maps_to_at_most_n_colours():
    image = ramp(height=8, width=8)
    for dither in ("none", "floyd-steinberg", "bayer-4"):
        out = ImageQuantize().run(ctx(), image, 4, dither)[0]
        assert out.shape == image.shape
        assert len(torch.unique(out.reshape(-1, 3), dim=0)) <= 4, dither
    two = pixels([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    assert torch.equal(ImageQuantize().run(ctx(), two, 2, "none")[0], two)


def test_quantize_keeps_alpha():
    rgba = torch.cat([ramp(height=2, width=2), torch.full((1, 2, 2, 1), 0.25)], dim=-1)
    out = ImageQuantize().run(ctx(), rgba, 2, "none")[0]
    assert out.shape == rgba.shape and torch.equal(out[..., 3], rgba[..., 3])


def test_canny_is_kornias_edges_as_rgb():
    image = torch.zeros(2, 16, 16, 3)
    image[:, 4:12, 4:12] = 1.0
    image[1, :, :, 1] = 0.3
    out = Canny().run(ctx(), image, 0.2, 0.5)[0]
    _, edges = kornia.filters.canny(image.movedim(-1, 1), 0.2, 0.5)
    assert out.shape == (2, 16, 16, 3)
    assert torch.equal(out, edges.repeat(1, 3, 1, 1).movedim(1, -1)) and out.amax() == 1.0


def test_canny_refuses_a_low_threshold_above_the_high_one():
    assert "low_threshold" in Canny().validate_inputs(None, low_threshold=0.9, high_threshold=0.5)
    assert Canny().validate_inputs(None, low_threshold=0.4, high_threshold=0.8) is None


# --- batches --------------------------------------------------------------------------------------

def test_batch_joins_and_resizes_image2_and_pads_missing_alpha():
    image1 = torch.zeros(2, 4, 4, 4)
    image2 = torch.ones(1, 8, 8, 3)
    out = ImageBatch().run(ctx(), image1, image2)[0]
    assert out.shape == (3, 4, 4, 4)
    assert torch.equal(out[:2], image1) and torch.allclose(out[2], torch.ones(4, 4, 4))


def test_from_batch_clamps_index_and_length():
    images = ramp(batch=4, height=1, width=1)
    assert torch.equal(ImageFromBatch().run(ctx(), images, 1, 2)[0], images[1:3])
    assert torch.equal(ImageFromBatch().run(ctx(), images, 9, 5)[0], images[3:])


def test_repeat_batch_repeats_the_whole_batch_in_order():
    images = ramp(batch=2, height=1, width=1)
    assert torch.equal(RepeatImageBatch().run(ctx(), images, 3)[0], torch.cat([images] * 3))


def test_outputs_over_the_pixel_cap_are_refused_before_allocation():
    small = ctx(max_latent_pixels=100)
    with pytest.raises(ImageTooLargeError, match="amount"):
        RepeatImageBatch().run(small, ramp(height=4, width=4), 7)
    with pytest.raises(ImageTooLargeError, match="largest_size"):
        ImageScaleToMaxDimension().run(small, ramp(), "bilinear", 20)
    with pytest.raises(ImageTooLargeError, match="batch sizes"):
        ImageBatch().run(small, ramp(batch=3, height=4, width=4), ramp(batch=4, height=4, width=4))
    with pytest.raises(ImageTooLargeError, match="spacing_width"):
        ImageStitch().run(small, ramp(height=4, width=4), "right", True, 1024, "white", ramp(height=4, width=4))


def test_get_image_size():
    assert GetImageSize().run(ctx(), ramp(batch=2, height=3, width=5)) == (5, 3, 2)


# --- geometry -------------------------------------------------------------------------------------

GRID = pixels([[[0.1], [0.2], [0.3]],
               [[0.4], [0.5], [0.6]]])


def test_crop_cuts_the_region_and_stops_at_the_edges():
    assert torch.equal(ImageCrop().run(ctx(), GRID, 2, 1, 1, 1)[0], pixels([[[0.5], [0.6]]]))
    assert torch.equal(ImageCrop().run(ctx(), GRID, 512, 512, 100, 0)[0], pixels([[[0.3]], [[0.6]]]))


def test_flip():
    assert torch.equal(ImageFlip().run(ctx(), GRID, "x-axis: vertically")[0], GRID.flip(1))
    assert torch.equal(ImageFlip().run(ctx(), GRID, "y-axis: horizontally")[0],
                       pixels([[[0.3], [0.2], [0.1]], [[0.6], [0.5], [0.4]]]))


def test_rotate_turns_clockwise():
    quarter = pixels([[[0.4], [0.1]], [[0.5], [0.2]], [[0.6], [0.3]]])
    assert torch.equal(ImageRotate().run(ctx(), GRID, "90 degrees")[0], quarter)
    assert torch.equal(ImageRotate().run(ctx(), GRID, "180 degrees")[0], GRID.flip(1, 2))
    assert torch.equal(ImageRotate().run(ctx(), GRID, "270 degrees")[0], quarter.flip(1, 2))
    assert torch.equal(ImageRotate().run(ctx(), GRID, "none")[0], GRID)


@pytest.mark.parametrize("height, width, expected", [(100, 50, (64, 32)), (50, 100, (32, 64)), (40, 40, (64, 64))])
def test_scale_to_max_dimension_sets_the_longer_side(height, width, expected):
    out = ImageScaleToMaxDimension().run(ctx(), torch.rand(2, height, width, 3), "area", 64)[0]
    assert out.shape == (2, *expected, 3)


def test_scale_to_max_dimension_refuses_a_zero_size_at_validation():
    assert "largest_size" in ImageScaleToMaxDimension().validate_inputs(None, largest_size=0)
    assert ImageScaleToMaxDimension().validate_inputs(None, upscale_method="area", largest_size=1) is None


def test_composite_pastes_source_at_offset_weighted_by_mask():
    destination = torch.zeros(1, 4, 4, 3)
    source = torch.ones(1, 2, 2, 3)
    out = ImageCompositeMasked().run(ctx(), destination, source, 1, 2, False)[0]
    expected = torch.zeros(1, 4, 4, 3)
    expected[:, 2:4, 1:3] = 1.0
    assert torch.equal(out, expected) and not destination.any()
    half = torch.full((1, 2, 2), 0.5)
    assert torch.allclose(ImageCompositeMasked().run(ctx(), destination, source, 0, 0, False, half)[0][0, 0, 0],
                          torch.full((3,), 0.5))


def test_composite_clips_at_the_edges_and_can_resize_the_source():
    destination = torch.zeros(2, 4, 4, 3)
    out = ImageCompositeMasked().run(ctx(), destination, torch.ones(1, 3, 3, 3), 3, 3, False)[0]
    assert out.sum() == 2 * 3 and out[:, 3, 3].eq(1).all()
    resized = ImageCompositeMasked().run(ctx(), destination, torch.ones(1, 2, 2, 3), 0, 0, True)[0]
    assert torch.equal(resized, torch.ones(2, 4, 4, 3))
    sources = torch.arange(5.0).reshape(5, 1, 1, 1).expand(5, 2, 2, 3)
    picked = ImageCompositeMasked().run(ctx(), destination, sources, 0, 0, True)[0]
    assert picked.shape == (2, 4, 4, 3) and picked[:, 0, 0, 0].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("direction, first", [("right", 1), ("left", 2), ("down", 1), ("up", 2)])
def test_stitch_joins_in_the_given_direction(direction, first):
    image1, image2 = torch.full((1, 4, 4, 3), 0.25), torch.full((1, 4, 4, 3), 0.75)
    out = ImageStitch().run(ctx(), image1, direction, False, 0, "white", image2)[0]
    sideways = direction in ("left", "right")
    assert out.shape == ((1, 4, 8, 3) if sideways else (1, 8, 4, 3))
    assert out[0, 0, 0, 0].item() == (0.25 if first == 1 else 0.75)


def test_stitch_spacing_padding_batches_and_matching():
    image1, image2 = torch.zeros(2, 4, 4, 3), torch.ones(1, 2, 3, 3)
    out = ImageStitch().run(ctx(), image1, "right", False, 3, "red", image2)[0]
    assert out.shape == (2, 4, 4 + 4 + 3, 3)  # spacing made even
    assert out[:, :, 4:8].eq(torch.tensor([1.0, 0.0, 0.0])).all()
    assert out[:, 1:3, 8:].eq(1).all() and out[:, 0, 8:].eq(0).all()  # image2 centred, padded
    matched = ImageStitch().run(ctx(), image1, "down", True, 0, "white", image2)[0]
    assert matched.shape == (2, 4 + 2, 4, 3)  # image2 scaled to width 4, keeping 2:3
    assert ImageStitch().run(ctx(), image1, "down", True, 0, "white")[0] is image1


def test_colour_to_mask_marks_exact_8_bit_matches():
    image = pixels([[[1.0, 0.0, 128 / 255], [1.0, 0.0, 0.5]], [[0.0, 0.0, 0.0], [1.0, 0.0, 129 / 255]]])
    mask = ImageColorToMask().run(ctx(), image, 0xFF0080)[0]
    assert mask.shape == (1, 2, 2) and mask.tolist() == [[[1.0, 1.0], [0.0, 0.0]]]
