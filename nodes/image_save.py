"""SaveImage and PreviewImage: PNG files with ComfyUI-compatible workflow metadata.

Files are named `{prefix}_{counter:05}_.png` like ComfyUI's, and are created exclusively, so
an existing file is never overwritten even when two runs save at once.
"""

from __future__ import annotations

import json
import re
import secrets
from functools import partial
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import torch
from PIL import Image

from engine.context import RunContext
from engine.declare import NodeResult, node
from engine.paths import UnsafePathError, contained
from engine.pngmeta import png_text_chunks, pnginfo
from engine.types import IMAGE, Link, String
from nodes.provenance import RECORD_CHUNK, reproducibility_record


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """One [H, W, C] float image in 0..1 as uint8, truncating like ComfyUI (not rounding)."""
    return np.clip(255.0 * image.detach().to(torch.float32).cpu().numpy(), 0, 255).astype(np.uint8)


def _next_counter(folder: Path, stem: str, extension: str = "png") -> int:
    pattern = re.compile(rf"^{re.escape(stem)}_(\d+)_\.{re.escape(extension)}$")
    counters = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))] if folder.is_dir() else []
    return max(counters, default=0) + 1


def save_images(images: torch.Tensor, root: Path, prefix: str, folder_type: str, chunks: dict[str, str],
                compress_level: int) -> list[dict[str, str]]:
    """Write each image of the batch under `root`; returns ComfyUI's `{filename, subfolder, type}` list."""
    folder, stem, subfolder = output_folder(root, prefix)
    info = pnginfo(chunks) if chunks else None
    saved = []
    counter = _next_counter(folder, stem)
    for image in images:
        picture = Image.fromarray(to_uint8(image))
        write = partial(picture.save, format="PNG", pnginfo=info, compress_level=compress_level)
        name, counter = write_numbered(folder, stem, "png", counter, write)
        saved.append({"filename": name, "subfolder": subfolder, "type": folder_type})
        counter += 1
    return saved


def output_folder(root: Path, prefix: str) -> tuple[Path, str, str]:
    """The folder (created), file stem and subfolder a `filename_prefix` names under `root`; no escaping it."""
    try:
        target = contained(root, prefix)
    except UnsafePathError as exc:
        raise ValueError(f"filename_prefix {prefix!r} is not allowed: {exc}") from None
    folder, stem = target.parent, target.name
    folder.mkdir(parents=True, exist_ok=True)
    subfolder = folder.relative_to(root.resolve()).as_posix()
    return folder, stem, "" if subfolder == "." else subfolder


def write_numbered(folder: Path, stem: str, extension: str, counter: int | None,
                   write: Callable[[BinaryIO], None]) -> tuple[str, int]:
    """Create `{stem}_{counter:05}_.{extension}` exclusively, at the first free counter from `counter`
    (None: after the highest existing one), and fill it with `write`; returns (file name, counter used)."""
    counter = _next_counter(folder, stem, extension) if counter is None else counter
    while True:
        name = f"{stem}_{counter:05}_.{extension}"
        try:
            with open(folder / name, "xb") as handle:
                write(handle)
            return name, counter
        except FileExistsError:
            counter += 1


@node("SaveImage", display_name="Save Image", category="image", output_node=True,
      hidden=["prompt", "extra_pnginfo"])
class SaveImage:
    """Saves images to the output folder as PNG, with the workflow embedded so it can be opened again.

    Besides ComfyUI's `prompt` and `workflow` chunks, a `sdgraph` chunk records the engine
    version, model hashes, seeds, samplers, device and precision.
    """

    images = Link(IMAGE, tooltip="The images to save.")
    filename_prefix = String("ComfyUI", tooltip="File name prefix; may include a subfolder (e.g. 'renders/cat').")

    def run(self, ctx: RunContext, images: torch.Tensor, filename_prefix: str) -> NodeResult:
        chunks = png_text_chunks(ctx.prompt or None, ctx.extra_pnginfo)
        chunks[RECORD_CHUNK] = json.dumps(reproducibility_record(ctx))
        saved = save_images(images, ctx.paths.output_dir, filename_prefix, "output", chunks, compress_level=4)
        return NodeResult(ui={"images": saved})


@node("PreviewImage", display_name="Preview Image", category="image", output_node=True,
      hidden=["prompt", "extra_pnginfo"])
class PreviewImage:
    """Shows images without keeping them: they go to the temp folder."""

    images = Link(IMAGE)

    def run(self, ctx: RunContext, images: torch.Tensor) -> NodeResult:
        prefix = "ComfyUI_temp_" + "".join(secrets.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
        chunks = png_text_chunks(ctx.prompt or None, ctx.extra_pnginfo)
        saved = save_images(images, ctx.paths.temp_dir, prefix, "temp", chunks, compress_level=1)
        return NodeResult(ui={"images": saved})
