"""SaveAnimatedWEBP and SaveAnimatedPNG: a whole image batch saved as one animated file, frame by frame.

Files are named and created as SaveImage's are (`{prefix}_{counter:05}_.webp` / `.png`, never
overwriting one), and carry the workflow where ComfyUI puts it: PNG text chunks, or WebP EXIF tags.
Pillow merges identical neighbouring frames into one that lasts as long (ComfyUI's files do the same).
"""

from __future__ import annotations

import json
from typing import BinaryIO, Callable

import torch
from PIL import Image

from engine.context import RunContext
from engine.declare import NodeResult, node
from engine.pngmeta import png_text_chunks, pnginfo
from engine.types import IMAGE, Boolean, Choice, Float, Int, Link, String
from nodes.image_save import output_folder, to_uint8, write_numbered

WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}
EXIF_MODEL, EXIF_MAKE = 0x0110, 0x010F


def frames(images: torch.Tensor) -> list[Image.Image]:
    """The batch as 8-bit Pillow images, truncated like SaveImage's."""
    return [Image.fromarray(to_uint8(image)) for image in images]


def frame_duration_ms(fps: float) -> int:
    """Milliseconds per frame, truncated to whole ones as ComfyUI does."""
    return int(1000.0 / fps)


def webp_exif(first: Image.Image, prompt: dict | None, extra_pnginfo: dict | None) -> Image.Exif:
    """ComfyUI's WebP metadata: `prompt:<json>` in the Model tag, each extra_pnginfo entry from Make downwards."""
    exif = first.getexif()
    if prompt is not None:
        exif[EXIF_MODEL] = f"prompt:{json.dumps(prompt)}"
    for offset, (key, value) in enumerate((extra_pnginfo or {}).items()):
        exif[EXIF_MAKE - offset] = f"{key}:{json.dumps(value)}"
    return exif


def save_animation(ctx: RunContext, images: torch.Tensor, prefix: str, extension: str,
                   write: Callable[[BinaryIO, list[Image.Image]], None]) -> NodeResult:
    """Write one animated file in the output folder; `write(handle, frames)` encodes it."""
    folder, stem, subfolder = output_folder(ctx.paths.output_dir, prefix)
    pictures = frames(images)
    name, _ = write_numbered(folder, stem, extension, None, lambda handle: write(handle, pictures))
    saved = {"filename": name, "subfolder": subfolder, "type": "output"}
    return NodeResult(ui={"images": [saved], "animated": [len(pictures) > 1]})


@node("SaveAnimatedWEBP", category="image/animation", output_node=True, hidden=["prompt", "extra_pnginfo"])
class SaveAnimatedWEBP:
    """Saves the batch as one animated WebP in the output folder, `fps` frames a second."""

    images = Link(IMAGE)
    filename_prefix = String("ComfyUI")
    fps = Float(6.0, min=0.01, max=1000.0, step=0.01)
    lossless = Boolean(True)
    quality = Int(80, min=0, max=100)
    method = Choice(list(WEBP_METHODS))

    def run(self, ctx: RunContext, images: torch.Tensor, filename_prefix: str, fps: float, lossless: bool,
            quality: int, method: str) -> NodeResult:
        def write(handle: BinaryIO, pictures: list[Image.Image]) -> None:
            exif = webp_exif(pictures[0], ctx.prompt or None, ctx.extra_pnginfo)
            pictures[0].save(handle, format="WEBP", save_all=True, append_images=pictures[1:],
                             duration=frame_duration_ms(fps), exif=exif, lossless=lossless, quality=quality,
                             method=WEBP_METHODS[method])

        return save_animation(ctx, images, filename_prefix, "webp", write)


@node("SaveAnimatedPNG", category="image/animation", output_node=True, hidden=["prompt", "extra_pnginfo"])
class SaveAnimatedPNG:
    """Saves the batch as one animated PNG (APNG) in the output folder, with the workflow in its text chunks."""

    images = Link(IMAGE)
    filename_prefix = String("ComfyUI")
    fps = Float(6.0, min=0.01, max=1000.0, step=0.01)
    compress_level = Int(4, min=0, max=9)

    def run(self, ctx: RunContext, images: torch.Tensor, filename_prefix: str, fps: float,
            compress_level: int) -> NodeResult:
        chunks = png_text_chunks(ctx.prompt or None, ctx.extra_pnginfo)

        def write(handle: BinaryIO, pictures: list[Image.Image]) -> None:
            pictures[0].save(handle, format="PNG", save_all=True, append_images=pictures[1:],
                             duration=frame_duration_ms(fps), pnginfo=pnginfo(chunks) if chunks else None,
                             compress_level=compress_level)

        return save_animation(ctx, images, filename_prefix, "png", write)
