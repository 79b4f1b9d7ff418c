"""Conditioning cut to one tile, as ssitu/ComfyUI_UltimateSDUpscale does before each redraw (usdu_utils.py
`crop_cond`): areas, masks, GLIGEN boxes and ControlNet hints made for the whole image are confined to the tile.

Three sizes are involved: `init_size`, the image the conditioning was made for (the node's input image);
`canvas_size`, the upscaled image the tiles are cut from; `tile_size`, the size a tile is sampled at. The
tile's `region` (x1, y1, x2, y2) is in canvas pixels. Areas and boxes are kept in canvas pixels relative to
the region, not rescaled to the tile size, as in the pack.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nodes.conditioning.value import CondEntry, Conditioning

Region = tuple[int, int, int, int]
Size = tuple[int, int]   # (width, height)


def resize_region(region: Region, init_size: Size, resize_size: Size) -> Region:
    """A region of an image of `init_size` on the same image resized to `resize_size` (outward rounding)."""
    x1, y1, x2, y2 = region
    (init_w, init_h), (new_w, new_h) = init_size, resize_size
    return (math.floor(x1 * new_w / init_w), math.floor(y1 * new_h / init_h),
            math.ceil(x2 * new_w / init_w), math.ceil(y2 * new_h / init_h))


def region_intersection(a: Region, b: Region) -> Region | None:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x1, y1, x2, y2) if x1 < x2 and y1 < y2 else None


def _box_in_tile(box: tuple[int, int, int, int], region: Region, init_size: Size,
                 canvas_size: Size) -> tuple[int, int, int, int] | None:
    """A box (h, w, y, x) in latent pixels of the initial image → the part inside the tile, (h, w, y, x) in
    latent pixels of the tile (None when it misses the tile)."""
    h, w, y, x = (8 * v for v in box)
    cut = region_intersection(resize_region((x, y, x + w, y + h), init_size, canvas_size), region)
    if cut is None:
        return None
    x1, y1, x2, y2 = cut[0] - region[0], cut[1] - region[1], cut[2] - region[0], cut[3] - region[1]
    return (y2 - y1) // 8, (x2 - x1) // 8, y1 // 8, x1 // 8


def crop_area(entry: CondEntry, region: Region, init_size: Size, canvas_size: Size) -> CondEntry:
    """The pack's `crop_area`: the area cut to the tile; an area that misses the tile is dropped together with
    its strength, so the entry then acts on the whole tile at strength 1. (An area in fractions of the image,
    ConditioningSetAreaPercentage's, stays as it is: the pack fails on those.)"""
    if entry.area is None:
        return entry
    cut = _box_in_tile(entry.area, region, init_size, canvas_size)
    if cut is None:
        return entry.with_(area=None, strength=1.0)
    return entry.with_(area=cut)


def crop_gligen(entry: CondEntry, region: Region, init_size: Size, canvas_size: Size) -> CondEntry:
    """The pack's `crop_gligen`: each GLIGEN box cut to the tile; boxes that miss it are dropped."""
    if entry.gligen is None:
        return entry
    boxes = []
    for box in entry.gligen.boxes:
        cut = _box_in_tile((box.height, box.width, box.y, box.x), region, init_size, canvas_size)
        if cut is not None:
            boxes.append(replace(box, height=cut[0], width=cut[1], y=cut[2], x=cut[3]))
    return entry.with_(gligen=replace(entry.gligen, boxes=tuple(boxes)))


def _pad_with_edges(picture: Image.Image, pad_x: int, pad_y: int) -> Image.Image:
    """The pack's `pad_image2` with fill: each side padded by its edge row or column (corner pixels left out)
    stretched across the padding, left, right, top, bottom in that order."""
    w, h = picture.size
    new_w, new_h = w + 2 * pad_x, h + 2 * pad_y
    padded = Image.new(picture.mode, (new_w, new_h))
    padded.paste(picture, (pad_x, pad_y))
    nearest = Image.Resampling.NEAREST
    if pad_x > 0:
        padded.paste(picture.crop((0, 1, 1, h - 1)).resize((pad_x, new_h), nearest), (0, 0))
        padded.paste(picture.crop((w - 1, 1, w, h - 1)).resize((pad_x, new_h), nearest), (new_w - pad_x, 0))
    if pad_y > 0:
        padded.paste(picture.crop((1, 0, w - 1, 1)).resize((new_w, pad_y), nearest), (0, 0))
        padded.paste(picture.crop((1, h - 1, w - 1, h)).resize((new_w, pad_y), nearest), (0, new_h - pad_y))
    return padded


def fit_to_tile(picture: Image.Image, tile_size: Size) -> Image.Image:
    """The pack's `resize_and_pad_image(fill=True)`: resized (Lanczos) to fit inside the tile keeping its
    aspect, padded with its edges, then resized to the tile exactly."""
    width, height = tile_size
    ratio = min(width / picture.width, height / picture.height)
    fitted = (round(picture.width * ratio), round(picture.height * ratio))
    resized = picture.resize(fitted, resample=Image.Resampling.LANCZOS)
    padded = _pad_with_edges(resized, (width - fitted[0]) // 2, (height - fitted[1]) // 2)
    return padded.resize((width, height), resample=Image.Resampling.LANCZOS)


def crop_mask(entry: CondEntry, region: Region, canvas_size: Size, tile_size: Size) -> CondEntry:
    """The pack's `crop_mask`: each mask as an 8-bit image, resized (bicubic) to the canvas, cut to the tile's
    region and fitted to the tile size."""
    if entry.mask is None:
        return entry
    masks = entry.mask if entry.mask.ndim == 3 else entry.mask[None]
    cut = []
    for mask in masks:
        picture = Image.fromarray((255 * torch.nan_to_num(mask.float()).cpu().numpy()).astype(np.uint8))
        picture = fit_to_tile(picture.resize(canvas_size, Image.Resampling.BICUBIC).crop(region), tile_size)
        cut.append(torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0))
    return entry.with_(mask=torch.stack(cut))


def crop_hint(hint: torch.Tensor, region: Region, canvas_size: Size, tile_size: Size) -> torch.Tensor:
    """The pack's `crop_controlnet` for one hint [B, C, H, W]: the region mapped onto the hint's own size,
    cut, and resized (nearest-exact) to the tile size."""
    x1, y1, x2, y2 = resize_region(region, canvas_size, (hint.shape[-1], hint.shape[-2]))
    return F.interpolate(hint[:, :, y1:y2, x1:x2], size=(tile_size[1], tile_size[0]), mode="nearest-exact")


def crop_conditioning(conditionings: tuple[Conditioning, ...], region: Region, init_size: Size, canvas_size: Size,
                      tile_size: Size) -> tuple[Conditioning, ...]:
    """Each conditioning (positive, negative, ...) cut to the tile. A ControlNet shared by several entries is
    cut once and stays shared, so the sampler still runs it once per step for all of them."""
    controls: dict[int, Any] = {}

    def cut_control(control: Any) -> Any:
        if id(control) not in controls:
            controls[id(control)] = replace(control, hint=crop_hint(control.hint, region, canvas_size, tile_size))
        return controls[id(control)]

    def cut(entry: CondEntry) -> CondEntry:
        entry = entry.with_(control=tuple(cut_control(c) for c in entry.control))
        entry = crop_gligen(entry, region, init_size, canvas_size)
        entry = crop_area(entry, region, init_size, canvas_size)
        return crop_mask(entry, region, canvas_size, tile_size)

    return tuple(tuple(cut(entry) for entry in conditioning) for conditioning in conditionings)
