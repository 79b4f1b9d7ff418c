"""ssitu/ComfyUI_UltimateSDUpscale (usdu_nodes.py, modules/processing.py, usdu_patch.py) with the A1111 script it
drives (Coyote-A/ultimate-upscale-for-automatic1111): upscale, then redraw the image tile by tile with img2img,
then optionally repaint the seams.

Like the pack, the work happens on 8-bit PIL images: each step draws a white region on a black mask, crops
the region's bounding box (grown by the padding, then to the processing size's aspect ratio), runs VAE encode,
KSampler and decode on the crop, and composites it back through the mask blurred by `mask_blur`. Conditioning
is cut to each crop as the pack cuts it (areas, masks, GLIGEN boxes, ControlNet hints: tile_conditioning.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from engine.context import RunContext
from engine.declare import Out, Provenance, node
from engine.types import CONDITIONING, IMAGE, MODEL, VAE, Boolean, Choice, Float, Int, Link
from nodes.packs.tile_conditioning import crop_conditioning
from nodes.sampler_nodes import SEED_MAX, run_sampler
from nodes.sampling import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.upscale import UPSCALE_MODEL, ImageUpscaleWithModel
from nodes.vae_nodes import decode, decode_tiled, encode

MAX_RESOLUTION = 8192
MODES = ["Linear", "Chess", "None"]
SEAM_FIX_MODES = ["None", "Band Pass", "Half Tile", "Half Tile + Intersections"]
Region = tuple[int, int, int, int]


def round_length(length: float, multiple: int = 8) -> int:
    return round(length / multiple) * multiple


def upscale_factors(scale: int) -> list[int]:
    """The model passes the A1111 script runs to reach `scale` (each 2, 3 or 4; odd scales round up)."""
    def factor(n: int) -> int:
        return 2 if n == 1 else 4 if n % 4 == 0 else 3 if n % 3 == 0 else 2 if n % 2 == 0 else 0

    while factor(scale) == 0:
        scale += 1
    factors, reached = [], 1
    while reached < scale:
        step = factor(scale // reached)
        factors.append(step)
        reached *= step
        if step == 0:
            break
    return factors


def crop_region(mask: Image.Image, pad: int) -> Region:
    """The mask's white bounding box grown by `pad` inside the image, with A1111's one pixel less at the
    right and bottom unless they touch the border."""
    box = mask.getbbox()
    x1, y1, x2, y2 = box if box is not None else (mask.width, mask.height, 0, 0)
    x1, y1 = max(x1 - pad, 0), max(y1 - pad, 0)
    x2, y2 = min(x2 + pad, mask.width), min(y2 + pad, mask.height)
    return x1, y1, x2 - (x2 < mask.width), y2 - (y2 < mask.height)


def expand_crop(region: Region, width: int, height: int, target_width: int, target_height: int) -> Region:
    """`region` grown to the target size: half to the right/bottom first, the rest to the left/top, then
    what is still missing to the right/bottom again, always inside the image."""
    x1, y1, x2, y2 = region
    x2 = min(x2 + (target_width - (x2 - x1)) // 2, width)
    x1 = max(x1 - (target_width - (x2 - x1)), 0)
    x2 = min(x2 + (target_width - (x2 - x1)), width)
    y2 = min(y2 + (target_height - (y2 - y1)) // 2, height)
    y1 = max(y1 - (target_height - (y2 - y1)), 0)
    y2 = min(y2 + (target_height - (y2 - y1)), height)
    return x1, y1, x2, y2


def tile_region(mask: Image.Image, padding: int, size: tuple[int, int],
                uniform: bool) -> tuple[Region, tuple[int, int]]:
    """The crop for one masked step and the size it is sampled at: the processing size `size` (the crop grown
    to its aspect ratio) with uniform tiles, else the crop grown to multiples of 8."""
    region = crop_region(mask, padding)
    x1, y1, x2, y2 = region
    width, height = x2 - x1, y2 - y1
    if uniform:
        ratio = size[0] / size[1]
        if width / height > ratio:
            target = width, round(width / ratio)
        else:
            target = round(height * ratio), height
        return expand_crop(region, mask.width, mask.height, *target), size
    target = math.ceil(width / 8) * 8, math.ceil(height / 8) * 8
    return expand_crop(region, mask.width, mask.height, *target), target


@dataclass(frozen=True)
class Step:
    """One img2img pass: its mask over the whole image, crop padding, processing size, denoise and blur."""

    mask: Image.Image
    padding: int
    size: tuple[int, int]
    denoise: float
    mask_blur: int


def _rectangle_mask(canvas: tuple[int, int], xi: int, yi: int, tw: int, th: int) -> Image.Image:
    mask = Image.new("L", canvas, "black")
    # PIL's rectangle includes its far corner: the tile is one pixel wider and taller, as in the pack.
    ImageDraw.Draw(mask).rectangle((xi * tw, yi * th, xi * tw + tw, yi * th + th), fill="white")
    return mask


def redraw_order(rows: int, cols: int, mode: str) -> list[tuple[int, int]]:
    """(xi, yi) of the tiles in the order they are redrawn: row by row, or Chess's two colours in turn."""
    cells = [(xi, yi) for yi in range(rows) for xi in range(cols)]
    if mode == "Chess":
        white = [(xi, yi) for xi, yi in cells if (xi % 2 == 0) != (yi % 2 == 1)]
        return white + [c for c in cells if c not in white]
    return cells if mode == "Linear" else []


def _half_gradients(tw: int, th: int) -> tuple[Image.Image, Image.Image]:
    """Masks for a horizontal and a vertical seam: a tile whose halves ramp up to the seam and back down."""
    gradient = Image.linear_gradient("L")
    row = Image.new("L", (tw, th), "black")
    row.paste(gradient.resize((tw, th // 2), resample=Image.Resampling.BICUBIC), (0, 0))
    row.paste(gradient.rotate(180).resize((tw, th // 2), resample=Image.Resampling.BICUBIC), (0, th // 2))
    col = Image.new("L", (tw, th), "black")
    col.paste(gradient.rotate(90).resize((tw // 2, th), resample=Image.Resampling.BICUBIC), (0, 0))
    col.paste(gradient.rotate(270).resize((tw // 2, th), resample=Image.Resampling.BICUBIC), (tw // 2, 0))
    return row, col


def seam_fix_steps(mode: str, canvas: tuple[int, int], rows: int, cols: int, tw: int, th: int, width: int,
                   padding: int, denoise: float, mask_blur: int) -> Iterator[Step]:
    """The seam-fix passes of the A1111 script, in its order."""
    def pasted(part: Image.Image, at: tuple[int, int]) -> Image.Image:
        mask = Image.new("L", canvas, "black")
        mask.paste(part, at)
        return mask

    if mode == "Band Pass":
        gradient = Image.linear_gradient("L")
        mirror = Image.new("L", (256, 256), "black")
        mirror.paste(gradient.resize((256, 128), resample=Image.Resampling.BICUBIC), (0, 0))
        mirror.paste(gradient.rotate(180).resize((256, 128), resample=Image.Resampling.BICUBIC), (0, 128))
        row = mirror.resize((canvas[0], width), resample=Image.Resampling.BICUBIC)
        col = mirror.rotate(90).resize((width, canvas[1]), resample=Image.Resampling.BICUBIC)
        for xi in range(1, cols):
            yield Step(pasted(col, (xi * tw - width // 2, 0)), padding, (width + padding * 2, canvas[1]), denoise, 0)
        for yi in range(1, rows):
            yield Step(pasted(row, (0, yi * th - width // 2)), padding, (canvas[0], width + padding * 2), denoise, 0)
    elif mode in ("Half Tile", "Half Tile + Intersections"):
        row, col = _half_gradients(tw, th)
        for yi in range(rows - 1):
            for xi in range(cols):
                yield Step(pasted(row, (xi * tw, yi * th + th // 2)), padding, (tw, th), denoise, mask_blur)
        for yi in range(rows):
            for xi in range(cols - 1):
                yield Step(pasted(col, (xi * tw + tw // 2, yi * th)), padding, (tw, th), denoise, mask_blur)
        if mode == "Half Tile + Intersections":
            corner = ImageOps.invert(Image.radial_gradient("L").resize((tw, th), resample=Image.Resampling.BICUBIC))
            for yi in range(rows - 1):
                for xi in range(cols - 1):
                    yield Step(pasted(corner, (xi * tw + tw // 2, yi * th + th // 2)), 0, (tw, th), denoise,
                               mask_blur)


def to_pil(images: torch.Tensor, index: int) -> Image.Image:
    return Image.fromarray((255 * torch.nan_to_num(images[index]).cpu().numpy()).astype(np.uint8))


def from_pil(picture: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None]


@dataclass
class TileSampler:
    """Runs one img2img step on every image of the batch at once (the pack's `process_images`)."""

    ctx: RunContext
    model: Any
    vae: Any
    positive: Any
    negative: Any
    seed: int
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    uniform: bool
    tiled_decode: bool
    init_size: tuple[int, int] | None = None   # (width, height) the conditioning was made for; None: the canvas

    def run(self, batch: list[Image.Image], step: Step) -> list[Image.Image]:
        self.ctx.check_interrupt()
        region, size = tile_region(step.mask, step.padding, step.size, self.uniform)
        mask = step.mask.filter(ImageFilter.GaussianBlur(step.mask_blur)) if step.mask_blur > 0 else step.mask
        crops = [picture.crop(region) for picture in batch]
        crop_size = crops[0].size
        crops = [c if c.size == size else c.resize(size, Image.Resampling.LANCZOS) for c in crops]
        latent = {"samples": encode(self.vae, torch.cat([from_pil(c) for c in crops]))}
        canvas = batch[0].size
        positive, negative = crop_conditioning((self.positive, self.negative), region, self.init_size or canvas,
                                               canvas, size)
        samples = run_sampler(self.ctx, self.model, self.seed, self.steps, self.cfg, self.sampler_name,
                              self.scheduler, positive, negative, latent, denoise=step.denoise)["samples"]
        pixels = decode_tiled(self.vae, samples, 512, 64) if self.tiled_decode else decode(self.vae, samples)
        out = []
        for i, picture in enumerate(batch):
            tile = to_pil(pixels, i)
            if tile.size != crop_size:
                tile = tile.resize(crop_size, Image.Resampling.LANCZOS)
            layer = Image.new("RGBA", picture.size)
            layer.paste(tile, region[:2])
            masked = layer.copy()
            masked.putalpha(mask)
            layer.paste(masked, layer)   # the tile's pixels carry the mask as alpha; the rest stays clear
            result = picture.convert("RGBA")
            result.alpha_composite(layer)
            out.append(result.convert("RGB"))
        return out


def ultimate_upscale(ctx: RunContext, image: torch.Tensor, sampler: TileSampler, upscale_by: float,
                     upscale_model: Any, mode_type: str, tile_width: int, tile_height: int, mask_blur: int,
                     tile_padding: int, denoise: float, seam_fix_mode: str, seam_fix_denoise: float,
                     seam_fix_width: int, seam_fix_mask_blur: int, seam_fix_padding: int) -> torch.Tensor:
    batch = [to_pil(image, i) for i in range(image.shape[0])]
    width, height = round_length(batch[0].width * upscale_by), round_length(batch[0].height * upscale_by)
    scale = math.ceil(max(width, height) / max(batch[0].width, batch[0].height))
    for factor in upscale_factors(scale):
        if upscale_model is None:   # the pack's fallback without a model: nearest × factor
            batch = [p.resize((p.width * factor, p.height * factor), Image.Resampling.NEAREST) for p in batch]
        else:                       # the model's own scale each pass, whatever the factor
            upscaled = ImageUpscaleWithModel().run(ctx, upscale_model, torch.cat([from_pil(p) for p in batch]))[0]
            batch = [to_pil(upscaled, i) for i in range(upscaled.shape[0])]
    batch = [p.resize((width, height), resample=Image.Resampling.LANCZOS) for p in batch]
    rows, cols = math.ceil(height / tile_height), math.ceil(width / tile_width)
    redraw_size = round_length(tile_width + tile_padding), round_length(tile_height + tile_padding)
    for xi, yi in redraw_order(rows, cols, mode_type):
        step = Step(_rectangle_mask((width, height), xi, yi, tile_width, tile_height), tile_padding, redraw_size,
                    denoise, mask_blur)
        batch = sampler.run(batch, step)
    for step in seam_fix_steps(seam_fix_mode, (width, height), rows, cols, tile_width, tile_height, seam_fix_width,
                               seam_fix_padding, seam_fix_denoise, seam_fix_mask_blur):
        batch = sampler.run(batch, step)
    return torch.cat([from_pil(p) for p in batch])


@node("UltimateSDUpscale", display_name="Ultimate SD Upscale", category="image/upscaling",
      outputs=[Out(IMAGE, "IMAGE")],
      provenance=Provenance("samplers", ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise",
                                         "upscale_by", "tile_width", "tile_height")))
class UltimateSDUpscale:
    """Upscales an image and runs image-to-image on tiles from it, then optionally repaints the seams."""

    image = Link(IMAGE)
    model = Link(MODEL)
    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    vae = Link(VAE)
    upscale_by = Float(2, min=0.05, max=4, step=0.05)
    seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)   # the editor adds one to any "seed"
    steps = Int(20, min=1, max=10_000, step=1)
    cfg = Float(8.0, min=0.0, max=100.0)
    sampler_name = Choice(SAMPLER_NAMES)
    scheduler = Choice(SCHEDULER_NAMES)
    denoise = Float(0.2, min=0.0, max=1.0, step=0.01)
    upscale_model = Link(UPSCALE_MODEL)
    mode_type = Choice(MODES)
    tile_width = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    tile_height = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    mask_blur = Int(8, min=0, max=64, step=1)
    tile_padding = Int(32, min=0, max=MAX_RESOLUTION, step=8)
    seam_fix_mode = Choice(SEAM_FIX_MODES)
    seam_fix_denoise = Float(1.0, min=0.0, max=1.0, step=0.01)
    seam_fix_width = Int(64, min=0, max=MAX_RESOLUTION, step=8)
    seam_fix_mask_blur = Int(8, min=0, max=64, step=1)
    seam_fix_padding = Int(16, min=0, max=MAX_RESOLUTION, step=8)
    force_uniform_tiles = Boolean(True)
    tiled_decode = Boolean(False)
    batch_size = Int(1, min=1, max=16, step=1)

    def run(self, ctx: RunContext, image, model, positive, negative, vae, upscale_by, seed, steps, cfg, sampler_name,
            scheduler, denoise, upscale_model, mode_type, tile_width, tile_height, mask_blur, tile_padding,
            seam_fix_mode, seam_fix_denoise, seam_fix_width, seam_fix_mask_blur, seam_fix_padding,
            force_uniform_tiles, tiled_decode, batch_size) -> tuple:
        # batch_size (tiles sampled together) only changes speed here: tiles always run one at a time.
        sampler = TileSampler(ctx, model, vae, positive, negative, seed, steps, cfg, sampler_name, scheduler,
                              force_uniform_tiles, tiled_decode, init_size=(image.shape[2], image.shape[1]))
        return (ultimate_upscale(ctx, image, sampler, upscale_by, upscale_model, mode_type, tile_width, tile_height,
                                 mask_blur, tile_padding, denoise, seam_fix_mode, seam_fix_denoise, seam_fix_width,
                                 seam_fix_mask_blur, seam_fix_padding),)


@node("UltimateSDUpscaleNoUpscale", display_name="Ultimate SD Upscale (No Upscale)", category="image/upscaling",
      outputs=[Out(IMAGE, "IMAGE")],
      provenance=Provenance("samplers", ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise",
                                         "tile_width", "tile_height")))
class UltimateSDUpscaleNoUpscale:
    """Runs image-to-image on tiles of an already upscaled image, then optionally repaints the seams."""

    upscaled_image = Link(IMAGE)
    model = Link(MODEL)
    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    vae = Link(VAE)
    seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)   # the editor adds one to any "seed"
    steps = Int(20, min=1, max=10_000, step=1)
    cfg = Float(8.0, min=0.0, max=100.0)
    sampler_name = Choice(SAMPLER_NAMES)
    scheduler = Choice(SCHEDULER_NAMES)
    denoise = Float(0.2, min=0.0, max=1.0, step=0.01)
    mode_type = Choice(MODES)
    tile_width = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    tile_height = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    mask_blur = Int(8, min=0, max=64, step=1)
    tile_padding = Int(32, min=0, max=MAX_RESOLUTION, step=8)
    seam_fix_mode = Choice(SEAM_FIX_MODES)
    seam_fix_denoise = Float(1.0, min=0.0, max=1.0, step=0.01)
    seam_fix_width = Int(64, min=0, max=MAX_RESOLUTION, step=8)
    seam_fix_mask_blur = Int(8, min=0, max=64, step=1)
    seam_fix_padding = Int(16, min=0, max=MAX_RESOLUTION, step=8)
    force_uniform_tiles = Boolean(True)
    tiled_decode = Boolean(False)
    batch_size = Int(1, min=1, max=16, step=1)

    def run(self, ctx: RunContext, upscaled_image, model, positive, negative, vae, seed, steps, cfg, sampler_name,
            scheduler, denoise, mode_type, tile_width, tile_height, mask_blur, tile_padding, seam_fix_mode,
            seam_fix_denoise, seam_fix_width, seam_fix_mask_blur, seam_fix_padding, force_uniform_tiles,
            tiled_decode, batch_size) -> tuple:
        sampler = TileSampler(ctx, model, vae, positive, negative, seed, steps, cfg, sampler_name, scheduler,
                              force_uniform_tiles, tiled_decode,
                              init_size=(upscaled_image.shape[2], upscaled_image.shape[1]))
        return (ultimate_upscale(ctx, upscaled_image, sampler, 1.0, None, mode_type, tile_width, tile_height,
                                 mask_blur, tile_padding, denoise, seam_fix_mode, seam_fix_denoise, seam_fix_width,
                                 seam_fix_mask_blur, seam_fix_padding),)
