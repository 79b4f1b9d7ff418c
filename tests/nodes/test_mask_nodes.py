"""Mask nodes on small masks: conversion, solid masks and their size cap, crop, composite, feather, grow, threshold."""

import numpy as np
import pytest
import scipy.ndimage
import torch

from engine.context import InterruptHandle, RunContext
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.ui_format import ui_to_api
from engine.workflow import Workflow
from nodes.mask_ops import (
    CropMask,
    FeatherMask,
    GrowMask,
    ImageToMask,
    InvertMask,
    MaskComposite,
    MaskToImage,
    MaskTooLargeError,
    SolidMask,
    ThresholdMask,
)
from tests.nodes.capture import Capture


def ctx(**settings):
    return RunContext(node_id="1", prompt_id="test", paths=Paths(), interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings=settings)


def mask_of(rows):
    return torch.tensor(rows, dtype=torch.float32)[None]


# --- conversions -------------------------------------------------------------------------------------------

def test_mask_to_image_repeats_the_value_in_rgb():
    mask = torch.rand(2, 3, 5)
    (image,) = MaskToImage().run(ctx(), mask)
    assert image.shape == (2, 3, 5, 3)
    assert all(torch.equal(image[..., c], mask) for c in range(3))
    assert MaskToImage().run(ctx(), torch.rand(3, 5))[0].shape == (1, 3, 5, 3)  # a single [H, W] mask


def test_image_to_mask_picks_a_channel_of_every_image():
    image = torch.rand(2, 3, 4, 4)
    assert torch.equal(ImageToMask().run(ctx(), image, "green")[0], image[..., 1])
    assert torch.equal(ImageToMask().run(ctx(), image, "alpha")[0], image[..., 3])
    with pytest.raises(ValueError, match="channel 'alpha': the image has 3 channels"):
        ImageToMask().run(ctx(), image[..., :3], "alpha")


def test_invert_and_threshold():
    mask = mask_of([[0.0, 0.25], [0.5, 1.0]])
    assert torch.equal(InvertMask().run(ctx(), mask)[0], mask_of([[1.0, 0.75], [0.5, 0.0]]))
    assert ThresholdMask().run(ctx(), mask, 0.5)[0].tolist() == [[[0, 0], [0, 1]]]
    assert ThresholdMask().run(ctx(), mask, 0.2)[0].dtype == torch.float32


# --- SolidMask and the size cap ----------------------------------------------------------------------------

def test_solid_mask_is_one_value_in_a_batch_of_one():
    (mask,) = SolidMask().run(ctx(), 0.25, 6, 4)
    assert mask.shape == (1, 4, 6) and mask.dtype == torch.float32 and mask.eq(0.25).all()


def test_solid_mask_is_held_to_the_pixel_cap_at_run_time_and_validation(tmp_path):
    with pytest.raises(MaskTooLargeError, match="64×64 = 4,096 pixels exceeds the limit of 1,024"):
        SolidMask().run(ctx(max_latent_pixels=1024), 1.0, 64, 64)
    assert SolidMask().validate_inputs(None, value=1.0, width=4096, height=4096) is None
    registry = NodeRegistry([SolidMask, Capture])
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    graph = Workflow.from_api({
        "1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 16384, "height": 16384}},
        "2": {"class_type": "Capture", "inputs": {"value": ["1", 0]}}})
    error = Executor(registry, paths, settings={"captured": []}).validate(graph).node_errors["1"]["errors"][0]
    assert error["type"] == "custom_validation_failed" and "mask too large" in error["message"]


# --- CropMask and MaskComposite ----------------------------------------------------------------------------

def test_crop_cuts_to_what_lies_inside():
    mask = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)
    assert torch.equal(CropMask().run(ctx(), mask, 1, 2, 2, 1)[0], mask[:, 2:3, 1:3])
    assert CropMask().run(ctx(), mask, 3, 3, 512, 512)[0].tolist() == [[[15.0]]]
    assert CropMask().run(ctx(), mask[0], 0, 0, 2, 2)[0].shape == (1, 2, 2)


@pytest.mark.parametrize("operation, expected", [
    ("multiply", [[0.5, 0.0], [0.0, 0.6]]),
    ("add", [[1.0, 1.0], [0.7, 1.0]]),       # sums above 1 are clamped
    ("subtract", [[0.5, 1.0], [0.0, 0.0]]),  # differences below 0 are clamped
    ("and", [[0.0, 0.0], [0.0, 1.0]]),       # logic reads rounded values: 0.5 → 0, 0.6 and 0.7 → 1
    ("or", [[1.0, 1.0], [1.0, 1.0]]),
    ("xor", [[1.0, 1.0], [1.0, 0.0]]),
])
def test_composite_operations_at_the_origin(operation, expected):
    destination = mask_of([[1.0, 1.0], [0.0, 0.6]])
    source = mask_of([[0.5, 0.0], [0.7, 1.0]])
    (out,) = MaskComposite().run(ctx(), destination, source, 0, 0, operation)
    assert torch.allclose(out, mask_of(expected))


def test_composite_places_the_source_and_clips_it_to_the_destination():
    destination = torch.zeros(1, 3, 3)
    (out,) = MaskComposite().run(ctx(), destination, torch.ones(1, 2, 2), 2, 1, "add")
    assert out.tolist() == [[[0, 0, 0], [0, 0, 1], [0, 0, 1]]]
    (outside,) = MaskComposite().run(ctx(), destination, torch.ones(1, 2, 2), 5, 0, "add")
    assert not outside.any() and not destination.any()


# --- FeatherMask -------------------------------------------------------------------------------------------

def test_feather_ramps_from_each_named_edge():
    (out,) = FeatherMask().run(ctx(), torch.ones(1, 1, 6), left=2, top=0, right=3, bottom=0)
    assert out[0, 0].tolist() == pytest.approx([0.5, 1.0, 1.0, 1.0, 2 / 3, 1 / 3])
    (rows,) = FeatherMask().run(ctx(), torch.ones(1, 4, 1), left=0, top=1, right=0, bottom=4)
    assert rows[0, :, 0].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25])
    (clamped,) = FeatherMask().run(ctx(), torch.ones(2, 2), left=10, top=0, right=0, bottom=0)
    assert clamped.shape == (1, 2, 2) and clamped[0, 0].tolist() == pytest.approx([0.5, 1.0])


# --- GrowMask ----------------------------------------------------------------------------------------------

def scipy_grow(mask, expand, tapered):
    """What ComfyUI computes: repeated grey dilation (erosion) with a 3×3 cross or square footprint."""
    c = 0 if tapered else 1
    footprint = np.array([[c, 1, c], [1, 1, 1], [c, 1, c]])
    out = mask.numpy()
    for _ in range(abs(expand)):
        op = scipy.ndimage.grey_dilation if expand > 0 else scipy.ndimage.grey_erosion
        out = op(out, footprint=footprint)
    return torch.from_numpy(out)


@pytest.mark.parametrize("expand", [1, 2, 3, -1, -2])
@pytest.mark.parametrize("tapered", [True, False])
def test_grow_matches_scipy_grey_morphology(expand, tapered):
    mask = torch.rand(2, 9, 11, generator=torch.Generator().manual_seed(3))
    mask[0, 4, 5] = 1.0
    (out,) = GrowMask().run(ctx(), mask, expand, tapered)
    expected = torch.stack([scipy_grow(m, expand, tapered) for m in mask])
    assert torch.equal(out, expected)


def test_grow_a_point_into_a_diamond_or_a_square():
    point = torch.zeros(1, 5, 5)
    point[0, 2, 2] = 1.0
    (diamond,) = GrowMask().run(ctx(), point, 1, True)
    (square,) = GrowMask().run(ctx(), point, 1, False)
    assert diamond[0].tolist() == [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0],
                                   [0, 0, 0, 0, 0]]
    assert square[0, 1:4, 1:4].eq(1).all() and square.sum() == 9
    assert torch.equal(GrowMask().run(ctx(), point, 0, True)[0], point)
    assert GrowMask().run(ctx(), point, 16384, True)[0].eq(1).all()  # huge steps stop once nothing changes


def test_ui_widgets_values_convert_for_mask_nodes():
    registry = NodeRegistry([SolidMask, GrowMask])
    ui = {"nodes": [
        {"id": 1, "type": "SolidMask", "inputs": [], "outputs": [{"name": "MASK", "type": "MASK", "links": [1]}],
         "widgets_values": [0.5, 64, 32]},
        {"id": 2, "type": "GrowMask", "inputs": [{"name": "mask", "type": "MASK", "link": 1}],
         "outputs": [{"name": "MASK", "type": "MASK", "links": []}], "widgets_values": [-3, False]}],
        "links": [[1, 1, 0, 2, 0, "MASK"]]}
    api = ui_to_api(ui, registry).to_api()
    assert api["1"]["inputs"] == {"value": 0.5, "width": 64, "height": 32}
    assert api["2"]["inputs"] == {"mask": ["1", 0], "expand": -3, "tapered_corners": False}
