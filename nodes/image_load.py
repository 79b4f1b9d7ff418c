"""LoadImage and LoadImageMask: images from the input folder as IMAGE and MASK tensors.

File names come from workflows, so every one is resolved through `Paths.input_path`, which refuses
anything leaving the input folder (`..`, absolute paths, symlinks pointing out). Pillow's
decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`) is left in force; a bomb is reported by name.
An animation is also bounded as a whole (`MAX_LOAD_PIXELS`, frames counted from their headers) at
validation and again before decoding: a few KB of GIF can otherwise hold a thousand huge frames.
Both nodes fingerprint the file's content, so an edited file is reloaded and an unchanged one is not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import UnsafePathError, contained
from engine.types import IMAGE, MASK, Choice, ChoicesProvider
from nodes.models.file_hash import sha256_file

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jfif", ".webp", ".gif", ".bmp", ".tif", ".tiff",
                              ".avif", ".ppm", ".pgm", ".pbm", ".tga"})
# Integer modes (16-bit PNG/TIFF and 32-bit `I`) are scaled from 0..65535, keeping their precision.
# ComfyUI squeezes `I` through 8 bits (÷255, then clipped) and mishandles `I;16`; this stays within 1/255 of it.
WIDE_INTEGER_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
CHANNELS = ("alpha", "red", "green", "blue")
# All frames of one file together, as LoadImage holds them: float32 RGB plus mask, 16 bytes a
# pixel, so 1 GiB. A frame counts at least 64x64, the size of the placeholder mask it gets.
MAX_LOAD_PIXELS = 64 * 2**20
MIN_FRAME_PIXELS = 64 * 64


class InputImages(ChoicesProvider):
    """Image files in the input folder and its subfolders, as sorted `/`-separated relative names.

    Hidden files and folders are skipped, and so is anything that resolves outside the folder.
    """

    def choices(self, paths: Any) -> list[str]:
        root = Path(paths.input_dir) if paths is not None else None
        if root is None or not root.is_dir():
            return []
        names = []
        for folder, subfolders, files in os.walk(root):  # does not descend into symlinked folders
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
            for name in files:
                if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                relative = (Path(folder) / name).relative_to(root).as_posix()
                try:
                    contained(root, relative)
                except UnsafePathError:
                    continue
                names.append(relative)
        return sorted(names)


def resolve_input_image(paths: Any, name: str) -> Path:
    """The file for `name` in the input folder: UnsafePathError if it would leave it, FileNotFoundError if absent."""
    path = paths.input_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{name!r} does not exist in the input folder")
    return path


def image_file_problem(paths: Any, name: Any) -> str | None:
    """Why `name` cannot be loaded from the input folder (ComfyUI's wording, with the reason), or None."""
    if name is None:  # fed by a link: checked when the node runs
        return None
    try:
        resolve_input_image(paths, name)
    except (UnsafePathError, FileNotFoundError) as exc:
        return f"Invalid image file: {exc}"
    return None


def animation_problem(image: Image.Image, name: str) -> str | None:
    """Why the frames of `image` together are too many pixels to load, or None (nothing is decoded)."""
    frames = getattr(image, "n_frames", 1)
    width, height = image.size
    total = frames * max(width * height, MIN_FRAME_PIXELS)
    if frames > 1 and total > MAX_LOAD_PIXELS:
        return (f"image {name!r} refused: its {frames} frames of {width}x{height} pixels would take {total} pixels "
                f"to load, over the limit of {MAX_LOAD_PIXELS}")
    return None


def load_problem(path: Path, name: str) -> str | None:
    """Why the frames of the file are too many to load, or None; a file that cannot be opened at all
    is left to the run, which names the reason."""
    try:
        with open_image(path, name) as picture:
            return animation_problem(picture, name)
    except (ValueError, OSError, EOFError, SyntaxError):
        return None


def too_large(name: str, exc: Exception) -> ValueError:
    return ValueError(f"image {name!r} refused: it is too large to decode safely ({exc})")


def open_image(path: Path, name: str) -> Image.Image:
    """Pillow's lazy open (header only), with its errors turned into ones that name the file."""
    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise too_large(name, exc) from None
    except UnidentifiedImageError:
        raise ValueError(f"image {name!r} is not in a format that can be read") from None
    except ValueError as exc:  # Pillow's refusal of a text chunk over its limit
        raise ValueError(f"image {name!r} could not be read: {exc}") from None


def frames(image: Image.Image) -> Iterator[Image.Image]:
    """Each frame, upright according to its EXIF orientation. MPO files (stereo JPEGs) give only the first."""
    for frame in ImageSequence.Iterator(image):
        yield ImageOps.exif_transpose(frame)
        if image.format == "MPO":
            return


def rgb_array(frame: Image.Image) -> np.ndarray:
    """[H, W, 3] float32 in 0..1."""
    if frame.mode in WIDE_INTEGER_MODES:
        gray = np.clip(np.asarray(frame).astype(np.float32) / 65535.0, 0.0, 1.0)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(frame.convert("RGB"), dtype=np.float32) / 255.0


def alpha_array(frame: Image.Image) -> np.ndarray | None:
    """[H, W] float32 opacity in 0..1, or None when the frame has no transparency."""
    if "A" in frame.getbands():
        return np.asarray(frame.getchannel("A"), dtype=np.float32) / 255.0
    if frame.mode == "P" and "transparency" in frame.info:
        return np.asarray(frame.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
    return None


def _empty_mask() -> torch.Tensor:
    # ComfyUI's placeholder when there is no alpha: a 64×64 zero mask, whatever the image size.
    return torch.zeros((64, 64), dtype=torch.float32)


def load_image_batch(path: Path, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE [B, H, W, 3] and MASK [B, H, W] (1 - alpha) from the frames of one file that share the first's size."""
    images: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []
    try:
        with open_image(path, name) as picture:
            problem = animation_problem(picture, name)
            if problem:
                raise ValueError(problem)
            for frame in frames(picture):
                if images and (frame.height, frame.width) != tuple(images[0].shape[:2]):
                    continue  # ComfyUI skips frames whose size differs from the first
                images.append(torch.from_numpy(rgb_array(frame)))
                alpha = alpha_array(frame)
                masks.append(_empty_mask() if alpha is None else 1.0 - torch.from_numpy(alpha))
    except Image.DecompressionBombError as exc:
        raise too_large(name, exc) from None
    except OSError as exc:
        raise ValueError(f"image {name!r} could not be decoded: {exc}") from None
    if len({tuple(m.shape) for m in masks}) > 1:  # some frames transparent, some not: give all a full-size mask
        masks = [torch.zeros(images[0].shape[:2]) if m.shape == (64, 64) else m for m in masks]
    return torch.stack(images), torch.stack(masks)


def load_mask_channel(path: Path, name: str, channel: str) -> torch.Tensor:
    """MASK [1, H, W] from one channel of the first frame; `alpha` is inverted (1 = transparent)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r} (expected one of {', '.join(CHANNELS)})")
    try:
        with open_image(path, name) as picture:
            frame = ImageOps.exif_transpose(picture)
            if frame.mode in WIDE_INTEGER_MODES:
                values = (np.ones((frame.height, frame.width), dtype=np.float32) if channel == "alpha"
                          else rgb_array(frame)[:, :, 0])
            else:
                rgba = frame if frame.getbands() == ("R", "G", "B", "A") else frame.convert("RGBA")
                values = np.asarray(rgba.getchannel(channel[0].upper()), dtype=np.float32) / 255.0
    except Image.DecompressionBombError as exc:
        raise too_large(name, exc) from None
    except OSError as exc:
        raise ValueError(f"image {name!r} could not be decoded: {exc}") from None
    mask = torch.from_numpy(values)
    return (1.0 - mask if channel == "alpha" else mask).unsqueeze(0)


class _InputImageFile:
    """Fingerprint and validation shared by the nodes that read one file from the input folder."""

    def fingerprint(self, paths: Any, image: str | None = None, **_: Any) -> str:
        if image is None:
            raise ValueError("the image name comes from a link, so its file cannot be hashed before running")
        return sha256_file(resolve_input_image(paths, image))

    def validate_inputs(self, paths: Any, image: str | None = None, **_: Any) -> str | None:
        return image_file_problem(paths, image)


@node("LoadImage", display_name="Load Image", category="image", outputs=[Out(IMAGE), Out(MASK)])
class LoadImage(_InputImageFile):
    """Load an image from the input folder; the mask is 1 where the image is transparent.

    Animated files give one image per frame (frames of a different size are skipped).
    """

    image = Choice(InputImages(), image_upload=True)

    def validate_inputs(self, paths: Any, image: str | None = None, **_: Any) -> str | None:
        problem = image_file_problem(paths, image)
        if problem is None and image is not None:
            problem = load_problem(resolve_input_image(paths, image), image)
        return problem

    def run(self, ctx: RunContext, image: str) -> tuple:
        return load_image_batch(resolve_input_image(ctx.paths, image), image)


@node("LoadImageMask", display_name="Load Image (as Mask)", category="mask", outputs=[Out(MASK)])
class LoadImageMask(_InputImageFile):
    """Load one channel of an image from the input folder as a mask (alpha inverted: 1 = transparent)."""

    image = Choice(InputImages(), image_upload=True)
    channel = Choice(CHANNELS)

    def run(self, ctx: RunContext, image: str, channel: str) -> tuple:
        return (load_mask_channel(resolve_input_image(ctx.paths, image), image, channel),)
