"""BlenderNeko/ComfyUI_TiledKSampler (nodes.py, tiling.py): sampling a large latent tile by tile.

Strategies as the pack: `simple` (a fixed grid, each tile fully denoised in turn), `random` and
`random strict` (a grid re-jittered every step from the seed, one step per tile; strict samples every tile
of a step from the same latent), `padded` (four passes of grids shifted by half a tile, each tile
generating only its centre). Each tile is our KSampler over that window of the latent, with the conditioning
cut to the tile as the pack's `slice_cond`, `slice_gligen` and `slice_cnet` do (`tile_conditioning`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.context import RunContext
from engine.declare import Out, Provenance, node
from engine.types import CONDITIONING, LATENT, MODEL, Choice, Float, Int, Link
from nodes.conditioning.regions import latent_mask as entry_latent_mask
from nodes.conditioning.regions import resolve_area
from nodes.conditioning.value import CondEntry, Conditioning
from nodes.sampler_nodes import SEED_MAX, run_sampler
from nodes.sampling import SAMPLER_NAMES, SCHEDULER_NAMES, initial_noise, ksampler_sigmas, latent_mask, sampler_info

MAX_RESOLUTION = 8192
STRATEGIES = ["random", "random strict", "padded", "simple"]
Tile = tuple[int, int, int, int, int, torch.Tensor | None]   # h, h_len, w, w_len, steps, mask


def simple_tiles(steps: int, shape: torch.Size, tile_height: int, tile_width: int) -> list[list[list[Tile]]]:
    """One pass over a fixed grid (latent units), the last row and column cut at the edge."""
    size_h, size_w, th, tw = shape[-2], shape[-1], tile_height // 8, tile_width // 8
    return [[[(h, min(th, size_h - h), w, min(tw, size_w - w), steps, None)
              for h in range(0, size_h, th) for w in range(0, size_w, tw)]]]


def padded_tiles(steps: int, shape: torch.Size, tile_height: int, tile_width: int) -> list[list[list[Tile]]]:
    """Four passes (grid; shifted down; shifted right; both), each tile's mask its centre half, grown to the
    border on the sides of tiles at the image's edge (in the passes that are not shifted that way)."""
    batch, size_h, size_w = shape[0], shape[-2], shape[-1]
    th, tw = (tile_height // 8) // 4 * 4, (tile_width // 8) // 4 * 4
    bounds_h, bounds_w = [0, th // 4, th - th // 4, th], [0, tw // 4, tw - tw // 4, tw]
    parts = [[torch.zeros(batch, 1, th, tw) for _ in range(3)] for _ in range(3)]
    for i in range(3):
        for j in range(3):
            parts[i][j][:, :, bounds_h[i]:bounds_h[i + 1], bounds_w[j]:bounds_w[j + 1]] = 1.0

    def mask(i: int, j: int, last_i: int, last_j: int, grow_h: bool, grow_w: bool, h_len: int, w_len: int):
        m = parts[1][1].clone()
        top, bottom, left, right = grow_h and i == 0, grow_h and i == last_i, grow_w and j == 0, grow_w and j == last_j
        for use, (a, b) in ((top, (0, 1)), (bottom, (2, 1)), (left, (1, 0)), (right, (1, 2)),
                            (top and left, (0, 0)), (top and right, (0, 2)),
                            (bottom and left, (2, 0)), (bottom and right, (2, 2))):
            if use:
                m += parts[a][b]
        return m[..., :h_len, :w_len]

    hs, ws = np.arange(0, size_h, th), np.arange(0, size_w, tw)
    hs_shift = np.arange(th // 2, size_h - th // 2, th)
    ws_shift = np.arange(tw // 2, size_w - th // 2, tw)   # the pack subtracts half the tile *height* here

    def grid(rows, cols, grow_h: bool, grow_w: bool) -> list[list[Tile]]:
        tiles: list[Tile] = []
        for i, h in enumerate(rows):
            for j, w in enumerate(cols):
                h_len, w_len = min(th, size_h - int(h)), min(tw, size_w - int(w))
                tiles.append((int(h), h_len, int(w), w_len, steps,
                              mask(i, j, len(rows) - 1, len(cols) - 1, grow_h, grow_w, h_len, w_len)))
        return [tiles]

    return [grid(hs, ws, True, True), grid(hs_shift, ws, False, True), grid(hs, ws_shift, True, False),
            grid(hs_shift, ws_shift, False, False)]


def _jittered(size: int, tile: int, jitter: int) -> list[tuple[int, int]]:
    count = int((size + jitter - 1) // tile + 1)
    edges = [int(np.clip(tile * c - jitter, 0, size)) for c in range(count + 1)]
    return [(a, b - a) for a, b in zip(edges, edges[1:])]


def random_tiles(steps: int, shape: torch.Size, tile_height: int, tile_width: int, seed: int) -> list[list[list[Tile]]]:
    """One pass of `steps` grids, each jittered by two uniform draws of a generator seeded with `seed`;
    alternate rows (even steps) or columns (odd steps) use the jitter shifted by half a tile."""
    generator = torch.Generator().manual_seed(int(seed) % 2**64)
    size_h, size_w, th, tw = shape[-2], shape[-1], tile_height // 8, tile_width // 8
    per_step: list[list[Tile]] = []
    for step in range(steps):
        r_w, r_h = torch.rand((2,), dtype=torch.float32, generator=generator).numpy()
        rows = [_jittered(size_h, th, int(r_h * th)), _jittered(size_h, th, int(((r_h + .5) % 1.0) * th))]
        cols = [_jittered(size_w, tw, int(r_w * tw)), _jittered(size_w, tw, int(((r_w + .5) % 1.0) * tw))]
        tiles: list[Tile]
        if step % 2 == 0:
            tiles = [(h[0], h[1], w[0], w[1], 1, None) for i, h in enumerate(rows[0]) for w in cols[i % 2]]
        else:
            tiles = [(h[0], h[1], w[0], w[1], 1, None) for i, w in enumerate(cols[0]) for h in rows[i % 2]]
        per_step.append(tiles)
    return [per_step]


def _whole_tile(h: int, h_len: int, w: int, w_len: int, tile_height: int, tile_width: int, size_h: int,
                size_w: int, mask: torch.Tensor | None) -> tuple[int, int, int, int, torch.Tensor | None]:
    """A tile cut at the image's edge moved back inside to full size, masked to its original part (the
    pack's `mask_at_boundary`)."""
    th, tw = tile_height // 8, tile_width // 8
    if (h_len in (th, size_h)) and (w_len in (tw, size_w)):
        return h, h_len, w, w_len, mask
    h_off, w_off = min(0, size_h - (h + th)), min(0, size_w - (w + tw))
    grown = torch.zeros(1, 1, th, tw)
    grown[:, :, -h_off:(h_len if h_off == 0 else th), -w_off:(w_len if w_off == 0 else tw)] = \
        1.0 if mask is None else mask
    return h + h_off, th, w + w_off, tw, grown


Box = tuple[int, int, int, int]   # h_len, w_len, h, w in latent pixels (ComfyUI's area order)


def box_in_tile(box: Box, h: int, h_len: int, w: int, w_len: int) -> Box | None:
    """The part of a box inside the tile, relative to the tile's corner (None when it misses the tile). The
    pack bounds the far edge by the tile's absolute end; areas are cut at the latent's edge when sampling, so
    bounding it by the tile's own size gives the same result."""
    box_h_len, box_w_len, box_h, box_w = box
    if not (box_h < h + h_len and box_h + box_h_len > h and box_w < w + w_len and box_w + box_w_len > w):
        return None
    top, left = max(0, box_h - h), max(0, box_w - w)
    bottom, right = min(h_len, box_h + box_h_len - h), min(w_len, box_w + box_w_len - w)
    return bottom - top, right - left, top, left


def tile_conditioning(conditionings: tuple[Conditioning, ...], h: int, h_len: int, w: int, w_len: int,
                      shape: torch.Size) -> tuple[Conditioning, ...]:
    """Each conditioning cut to the tile (latent pixels) of a latent of `shape`, as the pack does per tile:
    an entry whose area misses the tile, or whose mask is empty there, is left out; areas and GLIGEN boxes are
    cut to the tile (boxes outside it dropped); masks are resized to the latent and cut; ControlNet hints are
    resized (nearest-exact) to the latent's pixel size when they differ from it, then cut. A control shared by
    several entries stays shared."""
    height, width = shape[-2], shape[-1]
    controls: dict[int, Any] = {}

    def cut_control(control: Any) -> Any:
        if id(control) not in controls:
            hint = control.hint
            if tuple(hint.shape[-2:]) != (height * 8, width * 8):
                hint = F.interpolate(hint, size=(height * 8, width * 8), mode="nearest-exact")
            controls[id(control)] = replace(control, hint=hint[:, :, h * 8:(h + h_len) * 8, w * 8:(w + w_len) * 8])
        return controls[id(control)]

    def cut(entry: CondEntry) -> CondEntry | None:
        changes: dict[str, Any] = {}
        area = resolve_area(entry, height, width) if entry.area_fraction is not None else entry.area
        if area is not None:
            changes.update(area=box_in_tile(area, h, h_len, w, w_len), area_fraction=None)
            if changes["area"] is None:
                return None
        mask = entry_latent_mask(entry, height, width)
        if mask is not None:
            changes["mask"] = mask[:, h:h + h_len, w:w + w_len]
            if float(changes["mask"].sum()) == 0.0:
                return None
        if entry.gligen is not None:
            boxes = []
            for box in entry.gligen.boxes:
                inside = box_in_tile((box.height, box.width, box.y, box.x), h, h_len, w, w_len)
                if inside is not None:
                    boxes.append(replace(box, height=inside[0], width=inside[1], y=inside[2], x=inside[3]))
            changes["gligen"] = replace(entry.gligen, boxes=tuple(boxes)) if boxes else None
        changes["control"] = tuple(cut_control(c) for c in entry.control)
        return entry.with_(**changes)

    return tuple(tuple(e for e in map(cut, conditioning) if e is not None) for conditioning in conditionings)


def tiled_sample(ctx: RunContext, model: Any, add_noise: bool, seed: int, tile_width: int, tile_height: int,
                 strategy: str, steps: int, cfg: float, sampler_name: str, scheduler: str, positive, negative,
                 latent: dict, start_at_step: int, end_at_step: int, force_full_denoise: bool) -> dict:
    """The pack's `sample_common`; returns the new LATENT dict."""
    end_at_step = min(end_at_step, steps)
    samples = latent["samples"].float().clone()
    shape = samples.shape
    noise = initial_noise(seed, shape) if add_noise else torch.zeros(shape)
    noise_mask = latent.get("noise_mask")
    if noise_mask is not None:
        noise_mask = latent_mask(noise_mask, shape)
    tile_width, tile_height = min(shape[-1] * 8, tile_width), min(shape[-2] * 8, tile_height)
    if strategy != "padded":   # every strategy but padded noises the whole latent once, up front
        sigmas = ksampler_sigmas(model.model_sampling, scheduler, steps, 1.0,
                                 sampler_info(sampler_name).discard_penultimate_sigma)
        added = float(sigmas[start_at_step]) * noise / model.latent_scale
        samples += added * noise_mask if noise_mask is not None else added
    count = end_at_step - start_at_step
    if strategy in ("random", "random strict"):
        passes = random_tiles(count, shape, tile_height, tile_width, seed)
    elif strategy == "padded":
        passes = padded_tiles(count, shape, tile_height, tile_width)
    else:
        passes = simple_tiles(count, shape, tile_height, tile_width)
    for image_pass in passes:
        following = samples.clone() if strategy == "random strict" else samples
        for i, tiles in enumerate(image_pass):
            for h, h_len, w, w_len, tile_steps, tile_mask in tiles:
                mask = None if noise_mask is None else noise_mask[..., h:h + h_len, w:w + w_len]
                if tile_mask is not None:
                    mask = tile_mask if mask is None else mask * tile_mask
                if strategy in ("padded", "random strict"):
                    h, h_len, w, w_len, mask = _whole_tile(h, h_len, w, w_len, tile_height, tile_width,
                                                           shape[-2], shape[-1], mask)
                if mask is not None and float(mask.sum()) == 0.0:
                    continue
                tile = samples[..., h:h + h_len, w:w + w_len]
                tile_noise = noise[..., h:h + h_len, w:w + w_len]
                if strategy != "padded":
                    tile_noise = torch.zeros_like(tile) if mask is None or noise_mask is None \
                        else tile_noise * (1 - mask)
                window = {"samples": tile} if mask is None else {"samples": tile, "noise_mask": mask}
                start = start_at_step + i * tile_steps
                tile_positive, tile_negative = tile_conditioning((positive, negative), h, h_len, w, w_len, shape)
                result = run_sampler(ctx, model, seed, steps, cfg, sampler_name, scheduler, tile_positive,
                                     tile_negative, window, start_step=start, last_step=start + tile_steps,
                                     force_full_denoise=force_full_denoise and i + 1 == count,
                                     noise=tile_noise)["samples"]
                region = following[..., h:h + h_len, w:w + w_len]
                region.copy_(result if mask is None else region * (1 - mask) + result * mask)
            if strategy == "random strict":
                samples = following.clone()
    return {**latent, "samples": samples}


@node("BNK_TiledKSampler", display_name="Tiled KSampler", category="sampling", outputs=[Out(LATENT, "LATENT")],
      provenance=Provenance("samplers", ("seed", "tile_width", "tile_height", "tiling_strategy", "steps", "cfg",
                                         "sampler_name", "scheduler", "denoise")))
class TiledKSampler:
    """KSampler that denoises the latent in tiles, bounding memory by the tile size."""

    model = Link(MODEL)
    seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)   # the editor adds one to any "seed"
    tile_width = Int(512, min=256, max=MAX_RESOLUTION, step=64)
    tile_height = Int(512, min=256, max=MAX_RESOLUTION, step=64)
    tiling_strategy = Choice(STRATEGIES)
    steps = Int(20, min=1, max=10_000)
    cfg = Float(8.0, min=0.0, max=100.0)
    sampler_name = Choice(SAMPLER_NAMES)
    scheduler = Choice(SCHEDULER_NAMES)
    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    latent_image = Link(LATENT)
    denoise = Float(1.0, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, model, seed, tile_width, tile_height, tiling_strategy, steps, cfg, sampler_name,
            scheduler, positive, negative, latent_image, denoise) -> tuple:
        if denoise <= 0:
            return ({**latent_image},)
        total = int(steps / denoise)
        return (tiled_sample(ctx, model, True, seed, tile_width, tile_height, tiling_strategy, total, cfg,
                             sampler_name, scheduler, positive, negative, latent_image, total - steps, total,
                             False),)


@node("BNK_TiledKSamplerAdvanced", display_name="TiledK Sampler (Advanced)", category="sampling",
      outputs=[Out(LATENT, "LATENT")],
      provenance=Provenance("samplers", ("noise_seed", "tile_width", "tile_height", "tiling_strategy", "steps",
                                         "cfg", "sampler_name", "scheduler", "start_at_step", "end_at_step")))
class TiledKSamplerAdvanced:
    """Tiled KSampler with control over noise and the range of steps."""

    model = Link(MODEL)
    add_noise = Choice(["enable", "disable"])
    noise_seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)
    tile_width = Int(512, min=256, max=MAX_RESOLUTION, step=64)
    tile_height = Int(512, min=256, max=MAX_RESOLUTION, step=64)
    tiling_strategy = Choice(STRATEGIES)
    steps = Int(20, min=1, max=10_000)
    cfg = Float(8.0, min=0.0, max=100.0)
    sampler_name = Choice(SAMPLER_NAMES)
    scheduler = Choice(SCHEDULER_NAMES)
    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    latent_image = Link(LATENT)
    start_at_step = Int(0, min=0, max=10_000)
    end_at_step = Int(10_000, min=0, max=10_000)
    return_with_leftover_noise = Choice(["disable", "enable"])
    preview = Choice(["disable", "enable"])

    def run(self, ctx: RunContext, model, add_noise, noise_seed, tile_width, tile_height, tiling_strategy, steps,
            cfg, sampler_name, scheduler, positive, negative, latent_image, start_at_step, end_at_step,
            return_with_leftover_noise, preview) -> tuple:
        # The pack forces the full denoise when leftover noise is *enabled* (inverted; kept on purpose):
        # it only matters when the window ends before the schedule does.
        return (tiled_sample(ctx, model, add_noise == "enable", noise_seed, tile_width, tile_height,
                             tiling_strategy, steps, cfg, sampler_name, scheduler, positive, negative,
                             latent_image, start_at_step, end_at_step, return_with_leftover_noise == "enable"),)
