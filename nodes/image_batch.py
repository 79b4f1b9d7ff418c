"""ComfyUI's image toolbox for batches and geometry: batch, pick, repeat, stitch, crop, flip, rotate,
composite, scale to a longest side, size, and colour to mask.

IMAGE is [B, H, W, C] float in 0..1 and MASK is [B, H, W]. Nodes whose output can be larger than
their inputs check its size against the `max_latent_pixels` setting (width × height × batch) before
allocating it. Their sizes come from linked images, so the check runs when the node runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import IMAGE, MASK, Boolean, Choice, Int, Link
from nodes.image_ops import MAX_RESOLUTION
from nodes.image_resize import resize_image
from nodes.latent import MAX_LATENT_PIXELS_SETTING, max_latent_pixels


class ImageTooLargeError(ValueError):
    """An image a node would make exceeds the configured pixel cap."""


def check_image_size(ctx: RunContext, width: int, height: int, batch_size: int, inputs: str) -> None:
    """Refuse, naming `inputs`, an output of width × height × batch_size pixels over the configured cap."""
    cap = max_latent_pixels(ctx.settings)
    total = width * height * batch_size
    if total > cap:
        raise ImageTooLargeError(
            f"image too large: {width}×{height} pixels × batch {batch_size} = {total:,} pixels exceeds the "
            f"limit of {cap:,} (setting {MAX_LATENT_PIXELS_SETTING!r}); reduce {inputs}")


def repeat_to_batch(tensor: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`tensor` cut or cycled along dim 0 to `batch_size` entries (ComfyUI's repeat_to_batch_size)."""
    if tensor.shape[0] > batch_size:
        return tensor[:batch_size]
    if tensor.shape[0] < batch_size:
        repeats = [math.ceil(batch_size / tensor.shape[0])] + [1] * (tensor.dim() - 1)
        return tensor.repeat(repeats)[:batch_size]
    return tensor


def with_alpha(image: torch.Tensor, channels: int) -> torch.Tensor:
    """`image` with opaque channels (1.0) appended up to `channels`; RGB next to RGBA becomes RGBA."""
    extra = channels - image.shape[-1]
    return F.pad(image, (0, extra), value=1.0) if extra > 0 else image


@node("ImageBatch", display_name="Batch Images", category="image", outputs=[Out(IMAGE)])
class ImageBatch:
    """Join two image batches into one; image2 is resized (bilinear, centre crop) to image1's size."""

    image1 = Link(IMAGE)
    image2 = Link(IMAGE)

    def run(self, ctx: RunContext, image1: torch.Tensor, image2: torch.Tensor) -> tuple:
        channels = max(image1.shape[-1], image2.shape[-1])
        image1, image2 = with_alpha(image1, channels), with_alpha(image2, channels)
        height, width = image1.shape[1], image1.shape[2]
        check_image_size(ctx, width, height, image1.shape[0] + image2.shape[0], "the batch sizes")
        if image2.shape[1:3] != image1.shape[1:3]:
            image2 = resize_image(image2, width, height, "bilinear", "center")
        return (torch.cat((image1, image2), dim=0),)


@node("ImageFromBatch", category="image/batch", outputs=[Out(IMAGE)])
class ImageFromBatch:
    """`length` images of a batch from `batch_index` on; both are clamped to the batch."""

    image = Link(IMAGE)
    batch_index = Int(0, min=0, max=4095)
    length = Int(1, min=1, max=4096)

    def run(self, ctx: RunContext, image: torch.Tensor, batch_index: int, length: int) -> tuple:
        start = min(image.shape[0] - 1, batch_index)
        return (image[start:start + min(image.shape[0] - start, length)].clone(),)


@node("RepeatImageBatch", category="image/batch", outputs=[Out(IMAGE)])
class RepeatImageBatch:
    """The whole batch repeated `amount` times."""

    image = Link(IMAGE)
    amount = Int(1, min=1, max=4096)

    def run(self, ctx: RunContext, image: torch.Tensor, amount: int) -> tuple:
        check_image_size(ctx, image.shape[2], image.shape[1], image.shape[0] * amount, "amount")
        return (image.repeat((amount, 1, 1, 1)),)


@node("GetImageSize", display_name="Get Image Size", category="image", hidden=["unique_id"],
      outputs=[Out("INT", "width"), Out("INT", "height"), Out("INT", "batch_size")])
class GetImageSize:
    """Returns width and height of the image, and passes it through unchanged."""

    image = Link(IMAGE)

    def run(self, ctx: RunContext, image: torch.Tensor) -> tuple:
        return (image.shape[2], image.shape[1], image.shape[0])


@node("ImageCrop", display_name="Crop Image", category="image/transform", outputs=[Out(IMAGE)])
class ImageCrop:
    """The width × height region at (x, y), cut short at the image's edges; x and y stay inside it."""

    image = Link(IMAGE)
    width = Int(512, min=1, max=MAX_RESOLUTION, step=1)
    height = Int(512, min=1, max=MAX_RESOLUTION, step=1)
    x = Int(0, min=0, max=MAX_RESOLUTION, step=1)
    y = Int(0, min=0, max=MAX_RESOLUTION, step=1)

    def run(self, ctx: RunContext, image: torch.Tensor, width: int, height: int, x: int, y: int) -> tuple:
        x = min(x, image.shape[2] - 1)
        y = min(y, image.shape[1] - 1)
        return (image[:, y:y + height, x:x + width, :],)


@node("ImageFlip", category="image/transform", outputs=[Out(IMAGE)])
class ImageFlip:
    """Mirror images: about the x axis (upside down) or the y axis (left to right)."""

    image = Link(IMAGE)
    flip_method = Choice(["x-axis: vertically", "y-axis: horizontally"])

    def run(self, ctx: RunContext, image: torch.Tensor, flip_method: str) -> tuple:
        return (torch.flip(image, dims=[1 if flip_method.startswith("x") else 2]),)


ROTATIONS = ("none", "90 degrees", "180 degrees", "270 degrees")


@node("ImageRotate", display_name="Rotate", category="image/transform", outputs=[Out(IMAGE)])
class ImageRotate:
    """Rotate images clockwise by a quarter turn, a half or three quarters."""

    image = Link(IMAGE)
    rotation = Choice(ROTATIONS)

    def run(self, ctx: RunContext, image: torch.Tensor, rotation: str) -> tuple:
        # rot90 from the width axis towards the height axis turns the picture clockwise.
        return (torch.rot90(image, k=ROTATIONS.index(rotation), dims=[2, 1]),)


# ComfyUI lists "bilinear" twice; kept so that /object_info and saved widget values match its own.
MAX_DIMENSION_METHODS = ("area", "lanczos", "bilinear", "nearest-exact", "bilinear", "bicubic")


@node("ImageScaleToMaxDimension", category="image/upscaling", outputs=[Out(IMAGE)])
class ImageScaleToMaxDimension:
    """Resize images so that their longer side is `largest_size`, keeping the aspect ratio."""

    image = Link(IMAGE)
    upscale_method = Choice(MAX_DIMENSION_METHODS)
    largest_size = Int(512, min=0, max=MAX_RESOLUTION, step=1)

    def validate_inputs(self, paths: object, largest_size: int | None = None, **_: object) -> str | None:
        # ComfyUI's range allows 0, which no image can be scaled to: refused before anything runs.
        return "largest_size must be at least 1" if largest_size == 0 else None

    def run(self, ctx: RunContext, image: torch.Tensor, upscale_method: str, largest_size: int) -> tuple:
        height, width = image.shape[1], image.shape[2]
        if height > width:
            width, height = max(1, round(width / height * largest_size)), largest_size
        elif width > height:
            width, height = largest_size, max(1, round(height / width * largest_size))
        else:
            width = height = largest_size
        check_image_size(ctx, width, height, image.shape[0], "largest_size")
        return (resize_image(image, width, height, upscale_method),)


@node("ImageCompositeMasked", display_name="Image Composite Masked", category="image", outputs=[Out(IMAGE)])
class ImageCompositeMasked:
    """Composites a source image into a destination image using an optional mask and offset coordinates."""

    destination = Link(IMAGE)
    source = Link(IMAGE)
    x = Int(0, min=0, max=MAX_RESOLUTION, step=1)
    y = Int(0, min=0, max=MAX_RESOLUTION, step=1)
    resize_source = Boolean(False)
    mask = Link(MASK, optional=True)

    def run(self, ctx: RunContext, destination: torch.Tensor, source: torch.Tensor, x: int, y: int,
            resize_source: bool, mask: torch.Tensor | None = None) -> tuple:
        # As ComfyUI: extra source channels are dropped, a missing alpha is opaque.
        batch, height, width, channels = destination.shape
        # Extra source images and masks are cut before resizing: they would be dropped afterwards anyway.
        source = with_alpha(source[:batch, ..., :channels], channels)
        if resize_source:
            source = F.interpolate(source.movedim(-1, 1), size=(height, width), mode="bilinear").movedim(1, -1)
        source = repeat_to_batch(source, batch)
        if mask is None:
            weight = torch.ones(source.shape[:3] + (1,), dtype=source.dtype)
        else:
            planes = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))[:batch].to(source.dtype)
            weight = F.interpolate(planes, size=source.shape[1:3], mode="bilinear").movedim(1, -1)
            weight = repeat_to_batch(weight, batch)
        visible_height, visible_width = max(0, height - y), max(0, width - x)
        source = source[:, :visible_height, :visible_width]
        weight = weight[:, :visible_height, :visible_width]
        output = destination.clone()
        region = output[:, y:y + source.shape[1], x:x + source.shape[2]]
        region.copy_(weight * source + (1.0 - weight) * region)
        return (output,)


STITCH_COLOURS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "red": (1.0, 0.0, 0.0),
                  "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


def pad_centred(image: torch.Tensor, dim: int, size: int, value: float) -> torch.Tensor:
    """`image` padded with `value` on both sides of `dim` (1: height, 2: width) to `size`, the odd pixel after."""
    missing = size - image.shape[dim]
    if missing <= 0:
        return image
    before = missing // 2
    pad = (0, 0, before, missing - before) if dim == 2 else (0, 0, 0, 0, before, missing - before)
    return F.pad(image, pad, value=value)


@node("ImageStitch", display_name="Image Stitch", category="image/transform", outputs=[Out(IMAGE)])
class ImageStitch:
    """Stitches image2 to image1 in the specified direction.
    If image2 is not provided, returns image1 unchanged.
    Optional spacing can be added between images.
    """

    image1 = Link(IMAGE)
    direction = Choice(["right", "down", "left", "up"], default="right")
    match_image_size = Boolean(True)
    spacing_width = Int(0, min=0, max=1024, step=2)
    spacing_color = Choice(list(STITCH_COLOURS), default="white")
    image2 = Link(IMAGE, optional=True)

    def run(self, ctx: RunContext, image1: torch.Tensor, direction: str, match_image_size: bool,
            spacing_width: int, spacing_color: str, image2: torch.Tensor | None = None) -> tuple:
        if image2 is None:
            return (image1,)
        batch = max(image1.shape[0], image2.shape[0])
        sideways = direction in ("left", "right")
        along = 2 if sideways else 1  # the dimension images are joined along
        across = 1 if sideways else 2
        h1, w1 = image1.shape[1:3]
        h2, w2 = image2.shape[1:3]
        if match_image_size:  # image2 takes image1's size across the seam, keeping its aspect ratio
            h2, w2 = (h1, max(1, int(h1 * w2 / h2))) if sideways else (max(1, int(w1 * h2 / w2)), w1)
        spacing = spacing_width + spacing_width % 2  # ComfyUI keeps the gap even
        side = max(image1.shape[across], h2 if sideways else w2)
        length = image1.shape[along] + (w2 if sideways else h2) + spacing
        check_image_size(ctx, length if sideways else side, side if sideways else length, batch,
                         "the images, match_image_size or spacing_width")
        # A shorter batch repeats its last image.
        image1 = torch.cat([image1, image1[-1:].repeat(batch - image1.shape[0], 1, 1, 1)])
        image2 = torch.cat([image2, image2[-1:].repeat(batch - image2.shape[0], 1, 1, 1)])
        if match_image_size:
            image2 = resize_image(image2, w2, h2, "lanczos")
        colour = STITCH_COLOURS[spacing_color]
        # Padding for unequal sizes uses the colour's grey level; coloured spacing pads with black, as ComfyUI.
        pad_value = colour[0] if spacing_color in ("white", "black") else 0.0
        image1, image2 = (pad_centred(image, across, side, pad_value) for image in (image1, image2))
        channels = max(image1.shape[-1], image2.shape[-1])
        image1, image2 = with_alpha(image1, channels), with_alpha(image2, channels)
        parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
        if spacing > 0:
            shape = [batch, side, spacing, channels] if sideways else [batch, spacing, side, channels]
            gap = torch.ones(shape, dtype=image1.dtype)
            gap[..., :3] = torch.tensor(colour[:channels], dtype=image1.dtype)[: min(3, channels)]
            parts.insert(1, gap)
        return (torch.cat(parts, dim=along),)


@node("ImageColorToMask", category="mask", outputs=[Out(MASK)])
class ImageColorToMask:
    """A mask that is 1 where the pixel's 8-bit colour equals `color` (0xRRGGBB), else 0."""

    image = Link(IMAGE)
    color = Int(0, min=0, max=0xFFFFFF, step=1)

    def run(self, ctx: RunContext, image: torch.Tensor, color: int) -> tuple:
        levels = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.int64)
        packed = (levels[..., 0] << 16) + (levels[..., 1] << 8) + levels[..., 2]
        return ((packed == color).to(torch.float32),)
