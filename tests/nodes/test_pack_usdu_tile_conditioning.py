"""Conditioning cut to a tile as ComfyUI_UltimateSDUpscale's usdu_utils.py cuts it: areas and GLIGEN boxes
confined to the tile (or dropped), masks and ControlNet hints cropped to the tile's region and resized."""

import numpy as np
import torch

from nodes.conditioning.value import AppliedControl, CondEntry
from nodes.models.gligen_loading import Grounding, TextBox
from nodes.packs.advanced_controlnet import WeightedControl
from nodes.packs.tile_conditioning import (
    crop_area,
    crop_conditioning,
    crop_gligen,
    crop_hint,
    crop_mask,
    resize_region,
)

EMBEDS = torch.zeros(1, 77, 8)


def entry(**fields) -> CondEntry:
    return CondEntry(EMBEDS, **fields)


def quantised(values: torch.Tensor) -> torch.Tensor:
    """What a mask becomes on its way through the pack's 8-bit PIL images."""
    return torch.from_numpy((255 * values.numpy()).astype(np.uint8).astype(np.float32) / 255.0)


def test_a_region_maps_outward_onto_a_resized_image():
    assert resize_region((3, 5, 13, 15), (32, 32), (64, 48)) == (6, 7, 26, 23)
    assert resize_region((10, 10, 30, 30), (64, 64), (32, 32)) == (5, 5, 15, 15)


def test_an_area_is_cut_to_the_tile_in_canvas_pixels_relative_to_it():
    # (h, w, y, x) = (2, 2, 1, 1) latent pixels of a 64×64 image: pixels 8..24, i.e. 16..48 on a 128×128 canvas.
    area = entry(area=(2, 2, 1, 1), strength=0.5)
    assert crop_area(area, (0, 0, 64, 64), (64, 64), (128, 128)).area == (4, 4, 2, 2)
    assert crop_area(area, (32, 32, 96, 96), (64, 64), (128, 128)).area == (2, 2, 0, 0)
    # Cut at x=20: 28 pixels wide, floored to 3 latent pixels, as the pack's // 8 does.
    assert crop_area(area, (20, 0, 84, 64), (64, 64), (128, 128)).area == (4, 3, 2, 0)
    assert crop_area(area, (32, 32, 96, 96), (64, 64), (128, 128)).strength == 0.5


def test_an_area_outside_the_tile_is_dropped_with_its_strength():
    cut = crop_area(entry(area=(2, 2, 1, 1), strength=0.5), (64, 64, 128, 128), (64, 64), (128, 128))
    assert cut.area is None and cut.strength == 1.0   # the pack deletes both: the entry covers the tile


def test_an_entry_without_area_or_with_a_fractional_one_is_kept():
    whole = entry()
    assert crop_area(whole, (64, 64, 128, 128), (64, 64), (128, 128)) is whole
    fraction = entry(area_fraction=(0.5, 0.5, 0.0, 0.0))
    assert crop_area(fraction, (64, 64, 128, 128), (64, 64), (128, 128)).area_fraction == (0.5, 0.5, 0.0, 0.0)


def test_gligen_boxes_are_cut_to_the_tile_and_those_outside_dropped():
    pooled = torch.zeros(1, 8)
    inside, outside = TextBox(pooled, 4, 4, 0, 0), TextBox(pooled, 2, 2, 6, 6)   # (h, w, y, x), latent pixels
    grounding = Grounding(model=None, boxes=(inside, outside))   # type: ignore[arg-type]
    cut = crop_gligen(entry(gligen=grounding), (16, 16, 48, 48), (64, 64), (64, 64))
    assert [(b.height, b.width, b.y, b.x) for b in cut.gligen.boxes] == [(2, 2, 0, 0)]
    assert cut.gligen.boxes[0].pooled is pooled


def test_a_hint_is_cropped_on_its_own_scale_and_resized_nearest_exact_to_the_tile():
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    # Canvas 128×128, hint 64×64: the region (32, 32, 96, 96) is (16, 16, 48, 48) of the hint.
    cut = crop_hint(hint, (32, 32, 96, 96), (128, 128), (64, 64))
    expected = hint[:, :, 16:48, 16:48].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.equal(cut, expected)
    # A tile sampled at another size than its crop: the hint follows the tile, (width, height).
    assert crop_hint(hint, (0, 0, 64, 32), (64, 64), (48, 24)).shape == (1, 3, 24, 48)


def test_a_control_shared_by_positive_and_negative_is_cut_once_and_stays_shared():
    hint = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    plain = AppliedControl(net="net", source="cn", hint=hint, strength=0.7, start_percent=0.1)
    weighted = WeightedControl(net="acn", source="acn", hint=hint, mask=torch.ones(1, 4, 4))
    positive = (entry(control=(plain, weighted)), entry(control=(plain,)))
    negative = (entry(control=(plain, weighted)),)
    cut_positive, cut_negative = crop_conditioning((positive, negative), (0, 0, 16, 16), (32, 32), (32, 32), (32, 32))
    first = cut_positive[0].control[0]
    assert first is cut_positive[1].control[0] and first is cut_negative[0].control[0]
    assert first.hint.shape == (1, 3, 32, 32) and torch.equal(first.hint[:, :, ::2, ::2], hint[:, :, :16, :16])
    assert (first.strength, first.start_percent, first.net) == (0.7, 0.1, "net")
    second = cut_negative[0].control[1]
    assert isinstance(second, WeightedControl) and second.mask is weighted.mask   # the pack leaves ACN masks
    assert plain.hint is hint   # the applied control itself is never changed


def test_a_mask_is_upscaled_to_the_canvas_and_cut_to_the_region():
    mask = torch.zeros(1, 64, 64)
    mask[:, :, :32] = 1.0    # left half
    cut = crop_mask(entry(mask=mask), (32, 0, 96, 64), (128, 128), (64, 64)).mask
    assert cut.shape == (1, 64, 64)
    # Canvas columns 32..96: the left half ends at canvas column 64, tile column 32 (bicubic blurs it a little).
    assert torch.all(cut[:, :, :28] == 1.0) and torch.all(cut[:, :, 36:] == 0.0)
    assert 0.0 < cut[0, 10, 31] < 1.0 or 0.0 < cut[0, 10, 32] < 1.0


def test_a_region_of_another_aspect_is_fitted_and_padded_with_its_edge_rows():
    # Rows of constant values: the canvas is the image, the region 64×32, the tile 64×64.
    mask = (torch.arange(64, dtype=torch.float32) / 63)[None, :, None].expand(1, 64, 64).contiguous()
    cut = crop_mask(entry(mask=mask), (0, 16, 64, 48), (64, 64), (64, 64)).mask[0]
    rows = quantised(mask[0])
    assert torch.equal(cut[16:48], rows[16:48])
    assert torch.all(cut[:16] == rows[16, 0]) and torch.all(cut[48:] == rows[47, 0])


def test_crop_conditioning_cuts_every_part_of_every_entry():
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    control = AppliedControl(net="net", source="cn", hint=hint)
    positive = (entry(area=(2, 2, 0, 0), mask=torch.ones(1, 32, 32), control=(control,)),)
    negative = (entry(),)
    (cut,), (untouched,) = crop_conditioning((positive, negative), (0, 0, 32, 32), (32, 32), (64, 64), (32, 32))
    assert cut.area == (4, 4, 0, 0) and cut.mask.shape == (1, 32, 32) and cut.control[0].hint.shape[-2:] == (32, 32)
    assert (untouched.area, untouched.mask, untouched.control) == (None, None, ())
