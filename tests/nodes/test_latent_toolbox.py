"""The latent toolbox nodes on small latents: composite, blend, arithmetic, batches, crop, flip and rotate."""

import pytest
import torch

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.ui_format import ui_to_api
from engine.workflow import LinkRef
from nodes.latent import LatentTooLargeError
from nodes.latent_batch import LatentBatch, LatentBatchSeedBehavior, LatentFromBatch, RepeatLatentBatch
from nodes.latent_ops import (
    LatentAdd,
    LatentBlend,
    LatentComposite,
    LatentCompositeMasked,
    LatentCrop,
    LatentFlip,
    LatentInterpolate,
    LatentMultiply,
    LatentRotate,
    LatentSubtract,
    repeat_to_batch,
)


def ctx(**settings):
    return RunContext(node_id="1", prompt_id="test", paths=Paths(), interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings=settings)


def filled(value, batch=1, height=4, width=4, channels=4):
    return {"samples": torch.full((batch, channels, height, width), float(value))}


def ramp(batch=1, height=4, width=4, channels=4):
    return {"samples": torch.arange(batch * channels * height * width, dtype=torch.float32)
            .reshape(batch, channels, height, width)}


# --- helpers ---------------------------------------------------------------------------------------------

def test_repeat_to_batch_cycles_or_truncates():
    items = torch.arange(3).reshape(3, 1)
    assert repeat_to_batch(items, 7).flatten().tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert repeat_to_batch(items, 2).flatten().tolist() == [0, 1]
    assert repeat_to_batch(items, 3) is items


# --- LatentComposite ---------------------------------------------------------------------------------------

def test_composite_pastes_at_pixel_position_divided_by_8_and_keeps_other_keys():
    destination = {**filled(0, height=6, width=6), "noise_mask": torch.ones(1, 1, 48, 48)}
    (out,) = LatentComposite().run(ctx(), destination, filled(1, height=2, width=3), x=16, y=8, feather=0)
    expected = torch.zeros(1, 4, 6, 6)
    expected[:, :, 1:3, 2:5] = 1
    assert torch.equal(out["samples"], expected)
    assert out["noise_mask"] is destination["noise_mask"]
    assert not destination["samples"].any()  # the input is untouched


def test_composite_drops_what_falls_outside_the_destination():
    (out,) = LatentComposite().run(ctx(), filled(0), filled(1), x=24, y=24, feather=0)
    assert out["samples"][0, 0].tolist() == [[0, 0, 0, 0]] * 3 + [[0, 0, 0, 1]]
    (far,) = LatentComposite().run(ctx(), filled(0), filled(1), x=64, y=0, feather=0)
    assert not far["samples"].any()


def test_composite_feathers_only_the_edges_inside_the_destination():
    (out,) = LatentComposite().run(ctx(), filled(0, height=8, width=8), filled(1, height=4, width=8), x=0, y=16,
                                   feather=16)
    rows = out["samples"][0, 0, :, 0].tolist()
    # Rows 2..5 hold the source: ramps of 1/2, 1 from the top edge and 1, 1/2 towards the bottom one.
    assert rows == [0, 0, 0.5, 1, 1, 0.5, 0, 0]
    assert torch.equal(out["samples"][0, 0, 3], torch.ones(8))  # left and right edges touch the border


def test_composite_masked_blends_through_a_stretched_mask():
    mask = torch.tensor([[0.0, 1.0]])  # left half keeps the destination, right half takes the source
    (out,) = LatentCompositeMasked().run(ctx(), filled(0), filled(2, height=2, width=2), x=8, y=8,
                                         resize_source=False, mask=mask)
    values = out["samples"][0, 0]
    assert values[1:3, 1:3].tolist() == [[0, 2], [0, 2]]
    assert values[0].sum() == 0 and values[:, 0].sum() == 0 and values[3].sum() == 0
    (quarter,) = LatentCompositeMasked().run(ctx(), filled(4), filled(0, height=2, width=2), x=0, y=0,
                                             resize_source=False, mask=torch.full((1, 1), 0.25))
    assert torch.allclose(quarter["samples"][0, 0, :2, :2], torch.full((2, 2), 3.0))
    assert torch.equal(quarter["samples"][0, 0, 2:], torch.full((2, 4), 4.0))


def test_composite_masked_without_mask_replaces_and_can_resize_the_source():
    (out,) = LatentCompositeMasked().run(ctx(), filled(0), filled(3, height=2, width=2), x=0, y=0,
                                         resize_source=True)
    assert torch.equal(out["samples"], torch.full((1, 4, 4, 4), 3.0))
    batch = {"samples": torch.zeros(2, 4, 4, 4), "batch_index": [5, 6]}
    (out,) = LatentCompositeMasked().run(ctx(), batch, filled(1, height=1, width=1), x=0, y=0,
                                         resize_source=False)
    assert out["samples"][:, :, 0, 0].eq(1).all() and out["samples"].sum() == 8 and out["batch_index"] == [5, 6]


# --- Blend and arithmetic --------------------------------------------------------------------------------

def test_blend_weights_samples1_by_the_factor():
    (out,) = LatentBlend().run(ctx(), filled(1), filled(3), blend_factor=0.25)
    assert torch.allclose(out["samples"], torch.full((1, 4, 4, 4), 2.5))
    (resized,) = LatentBlend().run(ctx(), filled(1), filled(3, height=2, width=2), blend_factor=0.5)
    assert resized["samples"].shape == (1, 4, 4, 4) and torch.allclose(resized["samples"], torch.full_like(
        resized["samples"], 2.0))


def test_add_and_subtract_match_samples2_to_samples1():
    first = {**ramp(batch=2), "batch_index": [3, 4]}
    (added,) = LatentAdd().run(ctx(), first, filled(10))  # batch 1 → 2
    assert torch.equal(added["samples"], first["samples"] + 10) and added["batch_index"] == [3, 4]
    (subtracted,) = LatentSubtract().run(ctx(), first, filled(1, height=2, width=2))  # resized to 4×4
    assert subtracted["samples"].shape == (2, 4, 4, 4)
    assert torch.allclose(subtracted["samples"], first["samples"] - 1)


def test_multiply_scales_every_value():
    (out,) = LatentMultiply().run(ctx(), ramp(), multiplier=-0.5)
    assert torch.equal(out["samples"], ramp()["samples"] * -0.5)


def test_interpolate_ends_are_the_inputs_and_the_middle_mixes_direction_and_length():
    first, second = ramp(batch=3), filled(2, batch=3)
    (at_one,) = LatentInterpolate().run(ctx(), first, second, ratio=1.0)
    (at_zero,) = LatentInterpolate().run(ctx(), first, second, ratio=0.0)
    assert torch.allclose(at_one["samples"], first["samples"]) and torch.allclose(at_zero["samples"],
                                                                                   second["samples"])
    a = torch.zeros(1, 2, 1, 1)
    a[0, 0] = 2.0
    b = torch.zeros(1, 2, 1, 1)
    b[0, 1] = 4.0
    (half,) = LatentInterpolate().run(ctx(), {"samples": a}, {"samples": b}, ratio=0.5)
    # The unit vectors (1, 0) and (0, 1) average to the 45° direction; the length is the mean, 3.
    assert half["samples"].flatten().tolist() == pytest.approx([3 / 2 ** 0.5, 3 / 2 ** 0.5])


def test_interpolate_is_per_item_for_every_batch_size():
    first, second = torch.randn(4, 4, 3, 3, generator=torch.Generator().manual_seed(0)), torch.randn(
        4, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    (whole,) = LatentInterpolate().run(ctx(), {"samples": first}, {"samples": second}, ratio=0.3)
    for i in range(4):
        (single,) = LatentInterpolate().run(ctx(), {"samples": first[i:i + 1]}, {"samples": second[i:i + 1]},
                                            ratio=0.3)
        assert torch.allclose(whole["samples"][i:i + 1], single["samples"], atol=1e-6)


# --- Batches -----------------------------------------------------------------------------------------------

def test_from_batch_takes_a_clamped_slice_with_masks_and_indices():
    source = {**ramp(batch=4), "noise_mask": torch.arange(2, dtype=torch.float32).reshape(2, 1, 1, 1)}
    (out,) = LatentFromBatch().run(ctx(), source, batch_index=2, length=5)
    assert torch.equal(out["samples"], source["samples"][2:4])
    assert out["batch_index"] == [2, 3]
    assert out["noise_mask"].flatten().tolist() == [0, 1]  # the 2 masks cycled over 4 latents: items 2, 3
    (last,) = LatentFromBatch().run(ctx(), {**ramp(batch=2), "batch_index": [7, 9]}, batch_index=10, length=1)
    assert last["batch_index"] == [9] and torch.equal(last["samples"], ramp(batch=2)["samples"][1:])


def test_repeat_batch_repeats_items_and_numbers_new_noise_after_the_old():
    source = {**ramp(batch=2), "batch_index": [4, 5], "noise_mask": torch.rand(2, 1, 32, 32)}
    (out,) = RepeatLatentBatch().run(ctx(), source, amount=3)
    assert out["samples"].shape == (6, 4, 4, 4) and torch.equal(out["samples"][4:], source["samples"])
    assert out["batch_index"] == [4, 5, 6, 7, 8, 9]
    assert torch.equal(out["noise_mask"][2:4], source["noise_mask"])
    (plain,) = RepeatLatentBatch().run(ctx(), ramp(), amount=2)
    assert "batch_index" not in plain and plain["samples"].shape[0] == 2


def test_repeat_batch_is_held_to_the_latent_size_cap():
    with pytest.raises(LatentTooLargeError, match="reduce amount"):
        RepeatLatentBatch().run(ctx(max_latent_pixels=32 * 32 * 4), ramp(batch=2), amount=3)
    RepeatLatentBatch().run(ctx(max_latent_pixels=32 * 32 * 4), ramp(batch=2), amount=2)


def test_batch_joins_resized_samples2_and_both_noise_indices():
    (out,) = LatentBatch().run(ctx(), {**ramp(batch=2), "batch_index": [8, 9]}, filled(1, height=2, width=2))
    assert out["samples"].shape == (3, 4, 4, 4) and torch.allclose(out["samples"][2], torch.ones(4, 4, 4))
    assert out["batch_index"] == [8, 9, 0]
    with pytest.raises(LatentTooLargeError):
        LatentBatch().run(ctx(max_latent_pixels=32 * 32 * 2), ramp(batch=2), ramp())


def test_seed_behavior_fixed_repeats_the_first_index_and_random_drops_it():
    source = {**ramp(batch=3), "batch_index": [5, 6, 7]}
    (fixed,) = LatentBatchSeedBehavior().run(ctx(), source, seed_behavior="fixed")
    assert fixed["batch_index"] == [5, 5, 5] and source["batch_index"] == [5, 6, 7]
    (random,) = LatentBatchSeedBehavior().run(ctx(), source, seed_behavior="random")
    assert "batch_index" not in random
    (no_index,) = LatentBatchSeedBehavior().run(ctx(), ramp(batch=2), seed_behavior="fixed")
    assert no_index["batch_index"] == [0, 0]


# --- Crop, flip, rotate ------------------------------------------------------------------------------------

def test_crop_cuts_in_latent_cells_and_keeps_at_least_8_cells():
    source = ramp(height=16, width=16)
    (out,) = LatentCrop().run(ctx(), source, width=64, height=72, x=16, y=8)
    assert torch.equal(out["samples"], source["samples"][:, :, 1:10, 2:10])
    (moved,) = LatentCrop().run(ctx(), source, width=64, height=64, x=128, y=120)
    assert torch.equal(moved["samples"], source["samples"][:, :, 8:16, 8:16])


def test_flip_and_rotate():
    grid = {"samples": torch.tensor([[1.0, 2.0], [3.0, 4.0]]).expand(1, 4, 2, 2)}
    (vertical,) = LatentFlip().run(ctx(), grid, flip_method="x-axis: vertically")
    (horizontal,) = LatentFlip().run(ctx(), grid, flip_method="y-axis: horizontally")
    assert vertical["samples"][0, 0].tolist() == [[3, 4], [1, 2]]
    assert horizontal["samples"][0, 0].tolist() == [[2, 1], [4, 3]]
    turns = {rotation: LatentRotate().run(ctx(), grid, rotation=rotation)[0]["samples"][0, 0].tolist()
             for rotation in ("none", "90 degrees", "180 degrees", "270 degrees")}
    assert turns == {"none": [[1, 2], [3, 4]], "90 degrees": [[3, 1], [4, 2]], "180 degrees": [[4, 3], [2, 1]],
                     "270 degrees": [[2, 4], [1, 3]]}


# --- UI format -------------------------------------------------------------------------------------------

def test_ui_widgets_values_convert_in_comfyui_order():
    registry = NodeRegistry([LatentCrop, LatentCompositeMasked, LatentBatchSeedBehavior])
    ui = {"nodes": [
        {"id": 1, "type": "LatentCrop", "inputs": [{"name": "samples", "type": "LATENT", "link": 1}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [2]}], "widgets_values": [256, 128, 8, 16]},
        {"id": 2, "type": "LatentCompositeMasked",
         "inputs": [{"name": "destination", "type": "LATENT", "link": 2},
                    {"name": "source", "type": "LATENT", "link": 3},
                    {"name": "mask", "type": "MASK", "link": None}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}], "widgets_values": [64, 32, True]},
        {"id": 3, "type": "LatentBatchSeedBehavior", "inputs": [{"name": "samples", "type": "LATENT", "link": None}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [1, 3]}], "widgets_values": []}],
        "links": [[1, 3, 0, 1, 0, "LATENT"], [2, 1, 0, 2, 0, "LATENT"], [3, 3, 0, 2, 1, "LATENT"]]}
    nodes = ui_to_api(ui, registry).nodes
    assert nodes["1"].inputs == {"samples": LinkRef("3", 0), "width": 256, "height": 128, "x": 8, "y": 16}
    assert nodes["2"].inputs == {"destination": LinkRef("1", 0), "source": LinkRef("3", 0), "x": 64, "y": 32,
                                 "resize_source": True}
    assert nodes["3"].inputs == {"seed_behavior": "fixed"}  # a short list takes the declared default
