"""BlenderNeko's Tiled KSampler cuts conditioning to each tile (nodes.py `slice_cond`, `slice_gligen`,
`slice_cnet`): areas and GLIGEN boxes to the tile, masks to the tile's part of the latent, ControlNet hints to
the tile's pixels; entries that miss the tile are left out."""

import pytest
import torch

from nodes.conditioning.value import AppliedControl, CondEntry
from nodes.models.gligen_loading import Grounding, TextBox
from nodes.packs.tiled_ksampler import box_in_tile, tile_conditioning

SHAPE = torch.Size((1, 4, 32, 48))   # a 256×384 image's latent


def entry(**fields) -> CondEntry:
    return CondEntry(embeds=torch.zeros(1, 77, 8), **fields)


@pytest.mark.parametrize("box, tile, expected", [
    ((16, 16, 0, 0), (0, 32, 0, 32), (16, 16, 0, 0)),       # inside
    ((16, 16, 8, 24), (0, 32, 32, 16), (16, 8, 8, 0)),      # cut on the left
    ((32, 48, 0, 0), (16, 16, 16, 32), (16, 32, 0, 0)),     # covers the tile
    ((8, 8, 0, 0), (16, 16, 0, 16), None),                  # above it
    ((8, 8, 16, 8), (16, 16, 16, 16), None),                # touching its left edge only
])
def test_box_in_tile(box, tile, expected):
    assert box_in_tile(box, *tile) == expected


def test_an_area_is_cut_to_the_tile_and_an_area_missing_it_leaves_the_entry_out():
    overlapping, outside, whole = entry(area=(32, 32, 0, 0)), entry(area=(32, 16, 0, 0)), entry()
    [positive] = tile_conditioning(((overlapping, outside, whole),), 0, 32, 24, 24, SHAPE)   # columns 24..48
    assert [e.area for e in positive] == [(32, 8, 0, 0), None]
    assert positive[1].embeds is whole.embeds


def test_an_area_in_fractions_is_read_on_the_whole_latent_then_cut():
    [[cut]] = tile_conditioning(((entry(area_fraction=(0.5, 0.5, 0.5, 0.5)),),), 0, 32, 0, 32, SHAPE)
    assert cut.area == (16, 8, 16, 24) and cut.area_fraction is None


def test_a_mask_is_resized_to_the_latent_and_cut_and_an_empty_cut_leaves_the_entry_out():
    mask = torch.zeros(1, 256, 384)
    mask[:, :, :192] = 1.0   # the left half of the image
    [positive] = tile_conditioning(((entry(mask=mask),),), 0, 32, 0, 32, SHAPE)
    [cut] = positive
    assert cut.mask.shape == (1, 32, 32)
    assert torch.equal(cut.mask, torch.nn.functional.interpolate(mask[:, None], size=(32, 48), mode="bilinear")
                       [:, 0, :, :32])
    assert tile_conditioning(((entry(mask=mask),),), 0, 32, 32, 16, SHAPE) == ((),)


def test_gligen_boxes_are_cut_and_dropped_outside_and_none_left_removes_grounding():
    pooled = torch.zeros(1, 8)
    grounding = Grounding(model=object(), boxes=(TextBox(pooled, 8, 8, 0, 0), TextBox(pooled, 16, 16, 8, 30)))
    [[cut]] = tile_conditioning(((entry(gligen=grounding),),), 0, 32, 24, 24, SHAPE)
    assert [(b.height, b.width, b.y, b.x) for b in cut.gligen.boxes] == [(16, 16, 8, 6)]
    assert cut.gligen.model is grounding.model
    [[none_left]] = tile_conditioning(((entry(gligen=grounding),),), 24, 8, 0, 8, SHAPE)
    assert none_left.gligen is None


def test_a_controlnet_hint_is_resized_to_the_latent_pixels_cut_and_shared_entries_share_it():
    hint = torch.rand(1, 3, 64, 96)
    control = AppliedControl(net=object(), source="cn", hint=hint, strength=0.8)
    positive, negative = tile_conditioning(((entry(control=(control,)),), (entry(control=(control,)),)),
                                           8, 16, 16, 32, SHAPE)
    [cut] = positive[0].control
    full = torch.nn.functional.interpolate(hint, size=(256, 384), mode="nearest-exact")
    assert torch.equal(cut.hint, full[:, :, 64:192, 128:384])
    assert cut.strength == 0.8 and cut.net is control.net
    assert negative[0].control[0] is cut


def test_a_hint_already_at_the_latent_pixels_is_only_cut():
    hint = torch.rand(1, 3, 256, 384)
    control = AppliedControl(net=object(), source="cn", hint=hint)
    [[cut]] = tile_conditioning(((entry(control=(control,)),),), 0, 16, 0, 16, SHAPE)
    assert torch.equal(cut.control[0].hint, hint[:, :, :128, :128])


def test_through_the_sampler_an_area_acts_on_its_own_tile_only(models_dir, tmp_path):
    """Two 8×8 tiles side by side: a prompt set to the left tile's area shapes the left tile as a whole-tile
    prompt would, and leaves the right tile as if it were absent."""
    from engine.context import InterruptHandle, RunContext
    from engine.paths import Paths
    from nodes.conditioning_nodes import CLIPTextEncode
    from nodes.loaders import CheckpointLoaderSimple
    from nodes.packs.tiled_ksampler import TiledKSampler

    ctx = RunContext(node_id="1", prompt_id="test", paths=Paths(models_dir, tmp_path), interrupt=InterruptHandle(),
                     emit=lambda event, data: None, settings={})
    model, clip, _ = CheckpointLoaderSimple().run(ctx, ckpt_name="tiny-sd15.safetensors")
    [base] = CLIPTextEncode().run(ctx, text="a red circle", clip=clip)[0]
    [extra] = CLIPTextEncode().run(ctx, text="a blue square", clip=clip)[0]
    negative = CLIPTextEncode().run(ctx, text="", clip=clip)[0]
    latent = {"samples": torch.zeros(1, 4, 8, 16)}

    def sample(*positive: CondEntry) -> torch.Tensor:
        return TiledKSampler().run(ctx, model, 3, 64, 64, "simple", 1, 7.0, "euler", "normal", positive, negative,
                                   latent, 1.0)[0]["samples"]

    with_area, both = sample(base, extra.with_(area=(8, 8, 0, 0))), sample(base, extra)
    torch.testing.assert_close(with_area[..., 8:], sample(base)[..., 8:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(with_area[..., :8], both[..., :8], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(with_area[..., 8:], both[..., 8:])


def test_through_the_sampler_each_tile_reads_only_its_part_of_a_controlnet_hint(models_dir, tmp_path):
    """Changing the left half of the hint changes the left tile only."""
    from engine.context import InterruptHandle, RunContext
    from engine.paths import Paths
    from nodes.conditioning_nodes import CLIPTextEncode
    from nodes.loaders import CheckpointLoaderSimple
    from nodes.packs.tiled_ksampler import TiledKSampler
    from tests.nodes.test_controlnet import tiny_controlnet

    ctx = RunContext(node_id="1", prompt_id="test", paths=Paths(models_dir, tmp_path), interrupt=InterruptHandle(),
                     emit=lambda event, data: None, settings={})
    model, clip, _ = CheckpointLoaderSimple().run(ctx, ckpt_name="tiny-sd15.safetensors")
    [base] = CLIPTextEncode().run(ctx, text="a red circle", clip=clip)[0]
    negative = CLIPTextEncode().run(ctx, text="", clip=clip)[0]
    net = tiny_controlnet(model.unet, seed=5)
    hint = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(6))   # half the latent's pixels
    other = hint.clone()
    other[..., :32] = 1.0 - other[..., :32]

    def sample(picture: torch.Tensor) -> torch.Tensor:
        positive = (base.with_(control=(AppliedControl(net=net, source="tiny", hint=picture),)),)
        return TiledKSampler().run(ctx, model, 3, 64, 64, "simple", 1, 7.0, "euler", "normal", positive, negative,
                                   {"samples": torch.zeros(1, 4, 8, 16)}, 1.0)[0]["samples"]

    first, second = sample(hint), sample(other)
    torch.testing.assert_close(first[..., 8:], second[..., 8:], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(first[..., :8], second[..., :8])
