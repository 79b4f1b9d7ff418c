"""ComfyUI's image filters: blend, blur, sharpen, colour quantisation and Canny edges.

IMAGE is [B, H, W, C] float in 0..1. Each filter returns an image of its input's size, so none
needs a size check of its own; blur and sharpen work in [B, C, H, W] for torch's convolutions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import IMAGE, Choice, Float, Int, Link
from nodes.image_batch import repeat_to_batch, with_alpha
from nodes.image_resize import resize_image

BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")


def blend_layer(base: torch.Tensor, layer: torch.Tensor, mode: str) -> torch.Tensor:
    """`layer` composed onto `base` with one of ComfyUI's blend modes (before mixing by the factor)."""
    if mode == "normal":
        return layer
    if mode == "multiply":
        return base * layer
    if mode == "screen":
        return 1 - (1 - base) * (1 - layer)
    if mode == "overlay":
        return torch.where(base <= 0.5, 2 * base * layer, 1 - 2 * (1 - base) * (1 - layer))
    if mode == "soft_light":
        # The W3C soft-light formula, as ComfyUI: a cubic below a quarter, a square root above.
        lift = torch.where(base <= 0.25, ((16 * base - 12) * base + 4) * base, torch.sqrt(base))
        return torch.where(layer <= 0.5, base - (1 - 2 * layer) * base * (1 - base),
                           base + (2 * layer - 1) * (lift - base))
    if mode == "difference":
        return base - layer  # signed, as ComfyUI: the final clamp turns it into max(0, base - layer)
    raise ValueError(f"unknown blend_mode {mode!r} (expected one of {', '.join(BLEND_MODES)})")


@node("ImageBlend", display_name="Image Blend", category="image/postprocessing", outputs=[Out(IMAGE)])
class ImageBlend:
    """Mix image2 into image1 by `blend_factor` through a blend mode; image2 is fitted to image1's size."""

    image1 = Link(IMAGE)
    image2 = Link(IMAGE)
    blend_factor = Float(0.5, min=0.0, max=1.0, step=0.01)
    blend_mode = Choice(BLEND_MODES)

    def run(self, ctx: RunContext, image1: torch.Tensor, image2: torch.Tensor, blend_factor: float,
            blend_mode: str) -> tuple:
        channels = image1.shape[-1]
        # Cut image2 to image1's batch before resizing it: a long image2 batch is never scaled up whole.
        image2 = with_alpha(image2[:image1.shape[0], ..., :channels], channels)
        if image2.shape[1:3] != image1.shape[1:3]:
            image2 = resize_image(image2, image1.shape[2], image1.shape[1], "bicubic", "center")
        image2 = repeat_to_batch(image2, image1.shape[0])
        blended = image1 * (1 - blend_factor) + blend_layer(image1, image2, blend_mode) * blend_factor
        return (blended.clamp(0, 1),)


def gaussian_kernel(size: int, sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A normalised size × size Gaussian over coordinates from -1 to 1 (ComfyUI's: sigma is relative to the radius)."""
    axis = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    weights = torch.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    return (weights / weights.sum()).to(dtype)


def convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Each channel of [B, H, W, C] convolved with a square kernel, borders mirrored, size unchanged.

    Mirroring needs the image larger than the kernel's radius; smaller ones repeat their edge instead.
    """
    radius = kernel.shape[-1] // 2
    channels = image.shape[-1]
    planes = image.movedim(-1, 1)
    mode = "reflect" if radius < min(planes.shape[-2:]) else "replicate"
    padded = F.pad(planes, (radius, radius, radius, radius), mode=mode)
    weights = kernel.to(image.dtype).expand(channels, 1, *kernel.shape)
    return F.conv2d(padded, weights, groups=channels).movedim(1, -1)


@node("ImageBlur", display_name="Image Blur", category="image/postprocessing", outputs=[Out(IMAGE)])
class ImageBlur:
    """Gaussian blur over a (2 × blur_radius + 1)² window."""

    image = Link(IMAGE)
    blur_radius = Int(1, min=1, max=31, step=1)
    sigma = Float(1.0, min=0.1, max=10.0, step=0.1)

    def run(self, ctx: RunContext, image: torch.Tensor, blur_radius: int, sigma: float) -> tuple:
        return (convolve(image, gaussian_kernel(blur_radius * 2 + 1, sigma)),)


@node("ImageSharpen", category="image/postprocessing", outputs=[Out(IMAGE)])
class ImageSharpen:
    """Unsharp masking: the image plus `alpha` × 10 times its difference from a Gaussian blur."""

    image = Link(IMAGE)
    sharpen_radius = Int(1, min=1, max=31, step=1)
    sigma = Float(1.0, min=0.1, max=10.0, step=0.01)
    alpha = Float(1.0, min=0.0, max=5.0, step=0.01)

    def run(self, ctx: RunContext, image: torch.Tensor, sharpen_radius: int, sigma: float, alpha: float) -> tuple:
        size = sharpen_radius * 2 + 1
        kernel = gaussian_kernel(size, sigma) * -(alpha * 10)
        centre = size // 2
        kernel[centre, centre] += 1.0 - kernel.sum()  # weights sum to 1: flat areas keep their value
        return (convolve(image, kernel).clamp(0, 1),)


DITHERS = ("none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16")


def bayer_matrix(order: int) -> np.ndarray:
    """The order × order ordered-dither matrix, values centred on 0 in (-0.5, 0.5) (ComfyUI's recursion)."""
    matrix = np.zeros((1, 1), dtype=np.float64)
    level = 0
    while matrix.shape[0] < order:
        level += 1
        q = 4 ** level
        m = q * matrix
        matrix = np.block([[m - 1.5, m + 0.5], [m + 1.5, m - 0.5]]) / q
    return matrix


def bayer_dither(rgb: np.ndarray, palette: Image.Image, order: int) -> Image.Image:
    """`rgb` (uint8 [H, W, 3]) mapped to `palette` after adding a tiled Bayer threshold pattern."""
    colours = max(1, len(palette.getpalette() or []) // 3)
    pattern = 2 * 256 / colours * bayer_matrix(order) + 0.5
    height, width = rgb.shape[:2]
    tiled = np.tile(pattern, (math.ceil(height / order), math.ceil(width / order)))[:height, :width, None]
    shifted = np.clip(rgb.astype(np.float32) + tiled.astype(np.float32), 0, 255).astype(np.uint8)
    return Image.fromarray(shifted).quantize(palette=palette, dither=Image.Dither.NONE)


@node("ImageQuantize", category="image/postprocessing", outputs=[Out(IMAGE)])
class ImageQuantize:
    """Reduce each image to a palette of at most `colors` colours (Pillow's median cut), optionally dithered.

    Colours are truncated to 8 bits first, as ComfyUI does; an alpha channel passes through unchanged.
    """

    image = Link(IMAGE)
    colors = Int(256, min=1, max=256, step=1)
    dither = Choice(DITHERS)

    def run(self, ctx: RunContext, image: torch.Tensor, colors: int, dither: str) -> tuple:
        result = image.clone()
        for index in range(image.shape[0]):
            rgb = (image[index, ..., :3] * 255).to(torch.uint8).numpy()
            picture = Image.fromarray(rgb, mode="RGB")
            # Quantising against a palette made first is what makes `dither` apply (Pillow issue 5836).
            palette = picture.quantize(colors=colors)
            if dither.startswith("bayer"):
                quantized = bayer_dither(rgb, palette, int(dither.split("-")[1]))
            else:
                mode = Image.Dither.FLOYDSTEINBERG if dither == "floyd-steinberg" else Image.Dither.NONE
                quantized = picture.quantize(palette=palette, dither=mode)
            rgb_out = np.asarray(quantized.convert("RGB"), dtype=np.float32) / 255.0
            result[index, ..., :3] = torch.from_numpy(rgb_out).to(image.dtype)
        return (result,)


@node("Canny", category="image/preprocessors", outputs=[Out(IMAGE)])
class Canny:
    """Canny edges (kornia's, as ComfyUI): white lines on black, as an RGB image."""

    image = Link(IMAGE)
    low_threshold = Float(0.4, min=0.01, max=0.99, step=0.01)
    high_threshold = Float(0.8, min=0.01, max=0.99, step=0.01)

    def validate_inputs(self, paths: object, low_threshold: float | None = None,
                        high_threshold: float | None = None) -> str | None:
        if low_threshold is not None and high_threshold is not None and low_threshold > high_threshold:
            return f"low_threshold {low_threshold} is above high_threshold {high_threshold}"
        return None

    def run(self, ctx: RunContext, image: torch.Tensor, low_threshold: float, high_threshold: float) -> tuple:
        from kornia.filters import canny  # imported when used: kornia takes half a second to import

        _, edges = canny(image[..., :3].movedim(-1, 1), low_threshold, high_threshold)
        return (edges.repeat(1, 3, 1, 1).movedim(1, -1),)
