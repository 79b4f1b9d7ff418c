"""Tiled sampling packs on the tiny SD1.x model: BlenderNeko's Tiled KSampler (tile grids as tiling.py lays them
out; one tile covering the latent is exactly KSampler) and Ultimate SD Upscale (the A1111 script's tile grid, crop
regions and seam-fix masks; one tile over the image is img2img with KSampler)."""

import numpy as np
import pytest
import torch
from PIL import Image

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.ui_format import ui_to_api
from nodes.conditioning.value import AppliedControl
from nodes.conditioning_nodes import CLIPTextEncode
from nodes.loaders import CheckpointLoaderSimple
from nodes.packs import tiled_ksampler, ultimate_sd_upscale
from nodes.packs.tiled_ksampler import (
    TiledKSampler,
    TiledKSamplerAdvanced,
    padded_tiles,
    random_tiles,
    simple_tiles,
)
from nodes.packs.ultimate_sd_upscale import (
    UltimateSDUpscaleNoUpscale,
    _rectangle_mask,
    crop_region,
    expand_crop,
    from_pil,
    redraw_order,
    seam_fix_steps,
    tile_region,
    to_pil,
    ultimate_upscale,
    upscale_factors,
)
from nodes.sampler_nodes import KSampler, run_sampler
from nodes.sampling import initial_noise, ksampler_sigmas
from nodes.vae_nodes import decode, encode
from tests.nodes.test_controlnet import tiny_controlnet


def _ctx(paths):
    return RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings={})


@pytest.fixture(scope="module")
def pipeline(models_dir, tmp_path_factory):
    ctx = _ctx(Paths(models_dir, tmp_path_factory.mktemp("input")))
    model, clip, vae = CheckpointLoaderSimple().run(ctx, ckpt_name="tiny-sd15.safetensors")
    positive = CLIPTextEncode().run(ctx, text="a red circle", clip=clip)[0]
    negative = CLIPTextEncode().run(ctx, text="", clip=clip)[0]
    return ctx, model, vae, positive, negative


# --- tile geometry ---------------------------------------------------------------------------------

def test_simple_tiles_are_a_grid_cut_at_the_edge():
    tiles = simple_tiles(3, torch.Size([1, 4, 10, 12]), 32, 64)
    assert [t[:5] for t in tiles[0][0]] == [(0, 4, 0, 8, 3), (0, 4, 8, 4, 3), (4, 4, 0, 8, 3), (4, 4, 8, 4, 3),
                                            (8, 2, 0, 8, 3), (8, 2, 8, 4, 3)]


def test_random_tiles_partition_the_latent_each_step_with_the_seeds_jitter():
    shape = torch.Size([1, 4, 20, 24])
    (steps,) = random_tiles(3, shape, 64, 64, seed=7)
    generator = torch.Generator().manual_seed(7)
    for step, tiles in enumerate(steps):
        cover = torch.zeros(20, 24)
        for h, h_len, w, w_len, n, mask in tiles:
            assert n == 1 and mask is None and 0 < h_len <= 8 and 0 < w_len <= 8
            cover[h:h + h_len, w:w + w_len] += 1
        assert torch.equal(cover, torch.ones(20, 24))
        r_w, r_h = torch.rand((2,), generator=generator).tolist()
        first_col_width = 8 - int(r_w * 8) if step % 2 == 0 else None   # even steps: rows of jitter r_h first
        first_row = [t for t in tiles if t[0] == 0]
        if step % 2 == 0 and int(r_w * 8) > 0:
            assert min(t[3] for t in first_row if t[2] == 0) == first_col_width
        assert tiles[0][1] == (8 - int(r_h * 8) if int(r_h * 8) > 0 else 8) or step % 2 == 1
    assert random_tiles(3, shape, 64, 64, seed=7) != random_tiles(3, shape, 64, 64, seed=8)


def test_padded_passes_shift_by_half_a_tile_and_masks_cover_every_latent_pixel():
    shape = torch.Size([1, 4, 16, 16])
    passes = padded_tiles(2, shape, 64, 64)
    assert [[t[:4] for t in p[0]] for p in passes] == [
        [(0, 8, 0, 8), (0, 8, 8, 8), (8, 8, 0, 8), (8, 8, 8, 8)],
        [(4, 8, 0, 8), (4, 8, 8, 8)],
        [(0, 8, 4, 8), (8, 8, 4, 8)],
        [(4, 8, 4, 8)]]
    centre = passes[3][0][0][5][0, 0]
    assert centre[2:6, 2:6].eq(1).all() and centre.sum() == 16     # the centre half of the tile only
    corner = passes[0][0][0][5][0, 0]                               # top-left tile grows to its outer edges
    assert corner[:6, :6].eq(1).all() and corner.sum() == 36
    cover = torch.zeros(16, 16)
    for image_pass in passes:
        for h, h_len, w, w_len, _, mask in image_pass[0]:
            cover[h:h + h_len, w:w + w_len] += mask[0, 0]
    assert cover.min() >= 1


# --- sampling --------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["simple", "padded", pytest.param("random strict", marks=pytest.mark.slow)])
def test_one_tile_over_the_whole_latent_is_exactly_ksampler(pipeline, strategy):
    ctx, model, _, positive, negative = pipeline
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))}
    expected = KSampler().run(ctx, model, 5, 2, 7.0, "euler_ancestral", "normal", positive, negative, latent,
                              0.5)[0]["samples"]
    out = TiledKSampler().run(ctx, model, 5, 512, 512, strategy, 2, 7.0, "euler_ancestral", "normal", positive,
                              negative, latent, 0.5)[0]["samples"]
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_from_the_top_of_the_schedule_the_pack_adds_sigma_times_noise_not_comfys_sqrt(pipeline):
    ctx, model, _, positive, negative = pipeline
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    sigma = float(ksampler_sigmas(model.model_sampling, "normal", 2, 1.0)[0])
    noised = {"samples": latent + sigma * initial_noise(5, latent.shape) / model.latent_scale}
    expected = run_sampler(ctx, model, 5, 2, 7.0, "euler_ancestral", "normal", positive, negative, noised,
                           add_noise=False)["samples"]
    out = TiledKSampler().run(ctx, model, 5, 512, 512, "simple", 2, 7.0, "euler_ancestral", "normal", positive,
                              negative, {"samples": latent}, 1.0)[0]["samples"]
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_several_tiles_sample_each_window_and_disable_noise_keeps_a_finished_latent(pipeline):
    ctx, model, _, positive, negative = pipeline
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    whole = KSampler().run(ctx, model, 5, 2, 7.0, "euler", "normal", positive, negative, latent, 1.0)[0]["samples"]
    tiled = TiledKSampler().run(ctx, model, 5, 64, 64, "simple", 2, 7.0, "euler", "normal", positive, negative,
                                latent, 1.0)[0]["samples"]
    assert tiled.shape == whole.shape and torch.isfinite(tiled).all() and not torch.allclose(tiled, whole)
    unchanged = TiledKSamplerAdvanced().run(ctx, model, "disable", 5, 64, 64, "random", 2, 7.0, "euler", "normal",
                                            positive, negative, {"samples": tiled}, 2, 10_000, "disable",
                                            "disable")[0]["samples"]
    assert torch.equal(unchanged, tiled)


def test_the_declarations_keep_the_packs_names_and_order():
    registry = NodeRegistry()
    registry.register_module(tiled_ksampler)
    info = registry.object_info()
    assert info["BNK_TiledKSampler"]["input_order"]["required"] == [
        "model", "seed", "tile_width", "tile_height", "tiling_strategy", "steps", "cfg", "sampler_name",
        "scheduler", "positive", "negative", "latent_image", "denoise"]
    assert info["BNK_TiledKSamplerAdvanced"]["input_order"]["required"][-5:] == [
        "latent_image", "start_at_step", "end_at_step", "return_with_leftover_noise", "preview"]
    assert info["BNK_TiledKSampler"]["input"]["required"]["tiling_strategy"][0] == [
        "random", "random strict", "padded", "simple"]


# --- Ultimate SD Upscale ---------------------------------------------------------------------------

def test_usdu_upscale_passes_are_the_scripts_factors():
    assert [upscale_factors(s) for s in (1, 2, 3, 4, 5, 8, 9)] == [[], [2], [3], [4], [3, 2], [4, 2], [3, 3]]


def test_usdu_crop_regions_follow_a1111_one_pixel_rule_and_padding():
    first = _rectangle_mask((64, 64), 0, 0, 32, 32)      # PIL's rectangle covers 0..32 inclusive
    assert first.getbbox() == (0, 0, 33, 33)
    assert crop_region(first, 8) == (0, 0, 40, 40)       # grown by 8, one pixel less away from the border
    last = _rectangle_mask((64, 64), 1, 1, 32, 32)
    assert crop_region(last, 8) == (24, 24, 64, 64)
    assert expand_crop((10, 10, 20, 20), 64, 64, 16, 16) == (7, 7, 23, 23)
    assert expand_crop((50, 0, 64, 10), 64, 64, 20, 10) == (44, 0, 64, 10)   # the right edge pushes it left
    assert tile_region(first, 8, (48, 40), uniform=True) == ((0, 0, 48, 40), (48, 40))
    assert tile_region(first, 5, (48, 40), uniform=False) == ((0, 0, 40, 40), (40, 40))


def test_usdu_redraw_order_linear_and_chess():
    assert redraw_order(2, 3, "Linear") == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert redraw_order(2, 3, "Chess") == [(0, 0), (2, 0), (1, 1), (1, 0), (0, 1), (2, 1)]
    assert redraw_order(2, 3, "None") == []


@pytest.mark.parametrize("mode, count", [("None", 0), ("Band Pass", 1 + 2), ("Half Tile", 1 * 3 + 2 * 2),
                                         ("Half Tile + Intersections", 1 * 3 + 2 * 2 + 1 * 2)])
def test_usdu_seam_fix_passes_count_as_the_scripts_jobs(mode, count):
    steps = list(seam_fix_steps(mode, (96, 64), 2, 3, 32, 32, 16, 8, 0.3, 4))
    assert len(steps) == count and all(s.denoise == 0.3 for s in steps)


def test_usdu_seam_masks_ramp_up_to_the_seam_between_tiles():
    steps = list(seam_fix_steps("Half Tile + Intersections", (64, 64), 2, 2, 32, 32, 16, 8, 1.0, 4))
    row, _, col, _, corner = steps
    row_mask, col_mask = np.asarray(row.mask), np.asarray(col.mask)
    assert row.mask.getbbox() == (0, 16, 32, 48) and row.size == (32, 32) and row.padding == 8
    assert row_mask[31, 10] > 240 and row_mask[16, 10] < 16 and row_mask[47, 10] < 16   # brightest at y = 32
    assert col.mask.getbbox() == (16, 0, 48, 32) and col_mask[10, 31] > 240 and col_mask[10, 16] < 16
    assert corner.padding == 0 and np.asarray(corner.mask)[32, 32] > 240 and np.asarray(corner.mask)[17, 17] < 40
    band = list(seam_fix_steps("Band Pass", (64, 64), 2, 2, 32, 32, 16, 8, 1.0, 4))
    assert band[0].mask.getbbox()[0::2] == (24, 40) and band[0].size == (32, 64) and band[0].mask_blur == 0
    assert band[1].mask.getbbox()[1::2] == (24, 40) and band[1].size == (64, 32)


class _RecordingSampler:
    def __init__(self):
        self.steps = []

    def run(self, batch, step):
        self.steps.append(step)
        return batch


def test_usdu_redraws_every_tile_with_padding_then_fixes_seams(pipeline):
    ctx = pipeline[0]
    recorder = _RecordingSampler()
    image = torch.rand(1, 40, 72, 3, generator=torch.Generator().manual_seed(0))
    out = ultimate_upscale(ctx, image, recorder, 1.0, None, "Chess", 32, 32, 4, 8, 0.4, "Half Tile", 0.7, 16, 2, 8)
    assert out.shape == (1, 40, 72, 3)
    redraw = [s for s in recorder.steps if s.denoise == 0.4]
    assert len(redraw) == 2 * 3 and all(s.size == (40, 40) and s.padding == 8 for s in redraw)
    assert [s.mask.getbbox()[:2] for s in redraw] == [(0, 0), (64, 0), (32, 32), (32, 0), (0, 32), (64, 32)]
    assert len(recorder.steps) - len(redraw) == 1 * 3 + 2 * 2


def test_usdu_one_tile_over_the_image_is_img2img_with_ksampler(pipeline):
    ctx, model, vae, positive, negative = pipeline
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    out = UltimateSDUpscaleNoUpscale().run(ctx, image, model, positive, negative, vae, 3, 2, 7.0, "euler", "normal",
                                           0.5, "Linear", 64, 64, 0, 0, "None", 1.0, 64, 8, 16, True, False, 1)[0]
    # 8-bit PIL all along, as the pack: the tile is the quantised image, the result the quantised decode.
    latent = {"samples": encode(vae, from_pil(to_pil(image, 0)))}
    samples = run_sampler(ctx, model, 3, 2, 7.0, "euler", "normal", positive, negative, latent, denoise=0.5)
    expected = from_pil(to_pil(decode(vae, samples["samples"]), 0))
    assert torch.equal(out, expected)


class _Doubler:
    """A stand-in upscale model (spandrel's descriptor interface): nearest ×2."""

    scale, input_channels, output_channels = 2, 3, 3
    device, dtype = torch.device("cpu"), torch.float32
    architecture = type("Arch", (), {"name": "doubler"})

    def __call__(self, pixels):
        return torch.nn.functional.interpolate(pixels, scale_factor=2, mode="nearest")


def test_usdu_runs_the_upscale_model_once_per_pass_then_lanczos_to_the_rounded_size(pipeline):
    image = torch.rand(1, 16, 24, 3, generator=torch.Generator().manual_seed(0))
    out = ultimate_upscale(pipeline[0], image, _RecordingSampler(), 3.0, _Doubler(), "None", 32, 32, 4, 8, 0.4,
                           "None", 1.0, 16, 2, 8)
    doubled = to_pil(image, 0).resize((48, 32), Image.Resampling.NEAREST)   # scale 3: one pass of the ×2 model
    assert torch.equal(out, from_pil(doubled.resize((72, 48), Image.Resampling.LANCZOS)))


def test_usdu_and_tiled_ksampler_widget_values_from_the_editor_convert_past_the_seed_control():
    registry = NodeRegistry()
    registry.register_module(ultimate_sd_upscale)
    registry.register_module(tiled_ksampler)
    ui = {"nodes": [
        {"id": 70, "type": "UltimateSDUpscale", "inputs": [], "outputs": [], "widgets_values": [
            2, 123, "randomize", 20, 8, "euler", "normal", 0.2, "Linear", 512, 512, 8, 32, "Half Tile", 1, 64, 8,
            16, True, False, 1]},
        {"id": 71, "type": "BNK_TiledKSampler", "inputs": [], "outputs": [], "widgets_values": [
            7, "fixed", 512, 512, "random", 20, 8, "euler", "normal", 1]}], "links": []}
    api = ui_to_api(ui, registry).to_api()
    assert api["70"]["inputs"]["seed"] == 123 and api["70"]["inputs"]["steps"] == 20
    assert api["70"]["inputs"]["seam_fix_mode"] == "Half Tile" and api["70"]["inputs"]["batch_size"] == 1
    assert api["71"]["inputs"]["tile_width"] == 512 and api["71"]["inputs"]["tiling_strategy"] == "random"


def test_usdu_samples_each_tile_with_the_conditioning_cut_to_it(pipeline, monkeypatch):
    ctx, model, vae, positive, negative = pipeline
    hint = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    control = AppliedControl(net="net", source="cn", hint=hint)
    # A 32×32 image upscaled ×2 into four 32×32 tiles; the area covers the image's top-left quarter.
    area_positive = tuple(e.with_(area=(2, 2, 0, 0), strength=0.5, control=(control,)) for e in positive)
    controlled_negative = tuple(e.with_(control=(control,)) for e in negative)
    seen = []

    def recording_sampler(ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                          denoise):
        seen.append((positive, negative))
        return latent

    monkeypatch.setattr(ultimate_sd_upscale, "run_sampler", recording_sampler)
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(4))
    ultimate_sd_upscale.UltimateSDUpscale().run(
        ctx, image, model, area_positive, controlled_negative, vae, 2.0, 1, 1, 7.0, "euler", "normal", 0.5, None,
        "Linear", 32, 32, 0, 0, "None", 1.0, 64, 8, 16, True, False, 1)
    assert [(p[0].area, p[0].strength) for p, _ in seen] == [((4, 4, 0, 0), 0.5), (None, 1.0), (None, 1.0),
                                                            (None, 1.0)]
    tiles = [(0, 0), (16, 0), (0, 16), (16, 16)]   # (x, y) of each tile on the hint (canvas 64, hint 32)
    for (cut_positive, cut_negative), (x, y) in zip(seen, tiles):
        cut = cut_positive[0].control[0]
        assert cut is cut_negative[0].control[0]
        assert torch.equal(cut.hint, hint[:, :, y:y + 16, x:x + 16].repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_usdu_samples_tiles_with_a_cut_controlnet_hint_through_the_sampler(pipeline):
    """A 32×32 hint for a 64×32 image in two tiles: each tile's ControlNet pass takes its half of the hint."""
    ctx, model, vae, positive, negative = pipeline
    net = tiny_controlnet(model.unet, seed=5)
    hint = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    control = AppliedControl(net=net, source="tiny", hint=hint, strength=1.0)
    controlled = tuple(e.with_(control=(control,)) for e in positive)
    image = torch.rand(1, 32, 64, 3, generator=torch.Generator().manual_seed(7))
    args = (2, 2, 7.0, "euler", "normal", 0.5, "Linear", 32, 32, 0, 0, "None", 1.0, 64, 8, 16, True, False, 1)
    with_control = UltimateSDUpscaleNoUpscale().run(ctx, image, model, controlled, negative, vae, *args)[0]
    without = UltimateSDUpscaleNoUpscale().run(ctx, image, model, positive, negative, vae, *args)[0]
    assert with_control.shape == without.shape == (1, 32, 64, 3)
    assert (with_control - without).abs().max() > 0
