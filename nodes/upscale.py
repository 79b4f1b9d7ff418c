"""Model upscaling (ComfyUI's UpscaleModelLoader and ImageUpscaleWithModel), on spandrel.

The image is upscaled in overlapping tiles (512 px, 32 px overlap, as ComfyUI) blended with
linear ramps, so that memory is bounded by the tile, not the image; on out-of-memory the tile
is halved and the image started again (down to 128 px). An UPSCALE_MODEL is spandrel's
`ImageModelDescriptor` itself, as in ComfyUI, so node packs written for ComfyUI can use it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import ModelFiles
from engine.types import IMAGE, Choice, Link
from nodes.image_batch import check_image_size
from nodes.models.runtime import runtime_from_settings
from nodes.models.upscale_loading import UpscaleModelError, load_upscale_model

UPSCALE_MODEL = "UPSCALE_MODEL"
TILE = 512
TILE_OVERLAP = 32
MIN_TILE = 128


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Where tiles of `tile` pixels start along a side of `size`: every tile whole, the last one
    ending at the edge, neighbours overlapping by at least `overlap`."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((size - tile) / stride) + 1
    return [min(i * stride, size - tile) for i in range(count)]


def _edge_ramp(length: int, ramp: int, fade_start: bool, fade_end: bool) -> torch.Tensor:
    """Blend weights along one side of a tile: 1 inside, rising linearly (never to 0) over `ramp`
    pixels at an edge that another tile overlaps."""
    weights = torch.ones(length)
    ramp = min(ramp, length // 2)
    if ramp > 0:
        rise = torch.arange(1, ramp + 1, dtype=torch.float32) / (ramp + 1)
        if fade_start:
            weights[:ramp] = rise
        if fade_end:
            weights[-ramp:] = rise.flip(0)
    return weights


def tiled_upscale(image: torch.Tensor, model: Callable[[torch.Tensor], torch.Tensor], scale: int,
                  out_channels: int, tile: int = TILE, overlap: int = TILE_OVERLAP,
                  on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """`image` [B, C, H, W] upscaled by `model` tile by tile into [B, out_channels, H·scale, W·scale]
    (float32, on the image's device). `on_tile(done, total)` is called after each tile."""
    batch, _, height, width = image.shape
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    total = batch * len(ys) * len(xs)
    out = torch.zeros(batch, out_channels, height * scale, width * scale, dtype=torch.float32, device=image.device)
    weight = torch.zeros(1, 1, height * scale, width * scale, dtype=torch.float32, device=image.device)
    done = 0
    for b in range(batch):
        for y in ys:
            for x in xs:
                piece = image[b:b + 1, :, y:y + tile, x:x + tile]
                result = model(piece).float().to(image.device)
                th, tw = result.shape[-2], result.shape[-1]
                mask = (_edge_ramp(th, overlap * scale, y > 0, y + tile < height)[:, None]
                        * _edge_ramp(tw, overlap * scale, x > 0, x + tile < width)[None, :]).to(image.device)
                region = (slice(y * scale, y * scale + th), slice(x * scale, x * scale + tw))
                out[b:b + 1, :, region[0], region[1]] += result * mask
                if b == 0:
                    weight[0, 0, region[0], region[1]] += mask
                done += 1
                if on_tile is not None:
                    on_tile(done, total)
    return out.div_(weight)


def upscale_with_oom_retry(image: torch.Tensor, model: Callable[[torch.Tensor], torch.Tensor], scale: int,
                           out_channels: int, tile: int = TILE, overlap: int = TILE_OVERLAP, min_tile: int = MIN_TILE,
                           on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """`tiled_upscale`, starting again with tiles half as large whenever the device runs out of
    memory; the error is raised once the tile would fall under `min_tile`."""
    while True:
        try:
            return tiled_upscale(image, model, scale, out_channels, tile, overlap, on_tile)
        except torch.OutOfMemoryError:
            if tile // 2 < min_tile:
                raise
            tile //= 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


@node("UpscaleModelLoader", display_name="Load Upscale Model", category="loaders",
      outputs=[Out(UPSCALE_MODEL, "UPSCALE_MODEL")], uses_settings=["precision", "device"])
class UpscaleModelLoader:
    """Loads an image upscale model of any architecture spandrel knows (ESRGAN, SwinIR, HAT, DAT, SPAN, ...)."""

    model_name = Choice(ModelFiles("upscale_models"), tooltip="The upscale model to load, from models/upscale_models.")

    def run(self, ctx: RunContext, model_name: str) -> tuple:
        runtime = runtime_from_settings(ctx.settings)
        dtype = None if runtime.device.type == "cpu" else runtime.dtype  # fp32 on CPUs: bf16 costs detail
        return (load_upscale_model(ctx.paths.model_path("upscale_models", model_name), runtime.device, dtype),)


@node("ImageUpscaleWithModel", display_name="Upscale Image (using Model)", category="image/upscaling",
      outputs=[Out(IMAGE)])
class ImageUpscaleWithModel:
    """Upscales images with an upscale model, tile by tile (progress per tile; interruptible between tiles)."""

    upscale_model = Link(UPSCALE_MODEL)
    image = Link(IMAGE)

    def run(self, ctx: RunContext, upscale_model: Any, image: torch.Tensor) -> tuple:
        batch, height, width, channels = image.shape
        scale = int(upscale_model.scale)
        if channels != upscale_model.input_channels:
            raise UpscaleModelError(f"the image has {channels} channels and the {upscale_model.architecture.name} "
                                    f"model takes {upscale_model.input_channels}")
        check_image_size(ctx, width * scale, height * scale, batch, "the image size (or use a model of lower scale)")
        device, dtype = upscale_model.device, upscale_model.dtype

        def model(piece: torch.Tensor) -> torch.Tensor:
            ctx.check_interrupt()
            with torch.inference_mode():
                return upscale_model(piece.to(device, dtype))

        pixels = image.movedim(-1, 1)
        upscaled = upscale_with_oom_retry(pixels, model, scale, upscale_model.output_channels,
                                          on_tile=ctx.progress)
        return (upscaled.clamp_(0.0, 1.0).movedim(1, -1),)
