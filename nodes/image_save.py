"""SaveImage and PreviewImage: PNG files with ComfyUI-compatible workflow metadata.

Files are named `{prefix}_{counter:05}_.png` like ComfyUI's, and are created exclusively, so
an existing file is never overwritten even when two runs save at once.

A kill never leaves a truncated file under its final name: each is written under a hidden
temporary name in the same folder, fsynced, then linked to its name. SaveImage also keeps a small
journal per prompt and node (`.sdgraph-saves/` in the output folder) of the files it linked, so
that a prompt killed mid-run and started again removes its earlier files instead of duplicating them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import time
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Callable

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


PARTIAL_SUFFIX = ".partial"
JOURNAL_FOLDER = ".sdgraph-saves"
JOURNAL_MAX_AGE_S = 7 * 24 * 3600  # a prompt restarted later than this after a crash may duplicate files
_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())


class SaveJournal:
    """The files one prompt's node has linked into a folder, each with its identity, kept across a kill.

    A prompt started again after a crash keeps its id: its node finds the journal and removes the
    files of the earlier attempt (only those whose inode, size and mtime are still as recorded).
    """

    def __init__(self, root: Path, attempt_key: str, folder: Path) -> None:
        digest = hashlib.sha256(f"{attempt_key}\0{folder}".encode()).hexdigest()[:32]
        self.dir = root.resolve() / JOURNAL_FOLDER
        self.path = self.dir / f"{digest}.json"
        self.folder = folder
        self.entries: list[list[Any]] = []

    def remove_earlier_attempt(self) -> None:
        try:
            earlier = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        for name, identity in earlier if isinstance(earlier, list) else []:
            path = self.folder / str(name)
            try:
                if "/" not in str(name) and _identity(path) == identity:
                    path.unlink()
            except OSError:
                continue
        self.path.unlink(missing_ok=True)

    def record(self, name: str, file: Path) -> None:
        """Add `name` for `file` before it is linked, so that a kill right after the link still finds it."""
        self.entries.append([name, _identity(file)])
        self.dir.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(PARTIAL_SUFFIX)
        temp.write_text(json.dumps(self.entries))
        os.replace(temp, self.path)

    def drop_last(self) -> None:
        self.entries.pop()

    def prune(self) -> None:
        """Journals of prompts long finished are dropped."""
        cutoff = time.time() - JOURNAL_MAX_AGE_S
        for path in self.dir.glob("*.json") if self.dir.is_dir() else []:
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue


def _identity(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def remove_dead_partials(folder: Path) -> None:
    """Delete the temporary files that a process of this host left when it was killed mid-write."""
    for path in folder.glob(f".sdgraph-{_HOST}-*{PARTIAL_SUFFIX}"):
        pid = path.name[len(f".sdgraph-{_HOST}-"):].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            path.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_images(images: torch.Tensor, root: Path, prefix: str, folder_type: str, chunks: dict[str, str],
                compress_level: int, attempt_key: str | None = None) -> list[dict[str, str]]:
    """Write each image of the batch under `root`; returns ComfyUI's `{filename, subfolder, type}` list.

    With `attempt_key` (prompt and node) a journal is kept, so that a re-run after a kill replaces its files.
    """
    folder, stem, subfolder = output_folder(root, prefix)
    info = pnginfo(chunks) if chunks else None
    journal = SaveJournal(root, attempt_key, folder) if attempt_key else None
    if journal:
        journal.remove_earlier_attempt()
        journal.prune()
    saved = []
    counter = _next_counter(folder, stem)
    for image in images:
        picture = Image.fromarray(to_uint8(image))
        write = partial(picture.save, format="PNG", pnginfo=info, compress_level=compress_level)
        name, counter = write_numbered(folder, stem, "png", counter, write, journal)
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
    remove_dead_partials(folder)
    subfolder = folder.relative_to(root.resolve()).as_posix()
    return folder, stem, "" if subfolder == "." else subfolder


def write_numbered(folder: Path, stem: str, extension: str, counter: int | None,
                   write: Callable[[BinaryIO], None], journal: SaveJournal | None = None) -> tuple[str, int]:
    """Create `{stem}_{counter:05}_.{extension}` exclusively, at the first free counter from `counter`
    (None: after the highest existing one), filled by `write`; returns (file name, counter used).

    The file is complete and fsynced under a temporary name before it gets its own.
    """
    counter = _next_counter(folder, stem, extension) if counter is None else counter
    temp = folder / f".sdgraph-{_HOST}-{os.getpid()}-{secrets.token_hex(6)}{PARTIAL_SUFFIX}"
    try:
        with open(temp, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        while True:
            name = f"{stem}_{counter:05}_.{extension}"
            if journal:
                journal.record(name, temp)
            try:
                _link_exclusively(temp, folder / name)
                _fsync_folder(folder)
                return name, counter
            except FileExistsError:
                if journal:
                    journal.drop_last()
                counter += 1
    finally:
        temp.unlink(missing_ok=True)


def _link_exclusively(temp: Path, target: Path) -> None:
    """Give the file `temp` the name `target` too, atomically; FileExistsError if the name is taken."""
    try:
        os.link(temp, target)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: a rename, checked first (a small race)
        if target.exists():
            raise FileExistsError(target) from None
        os.rename(temp, target)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


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
        saved = save_images(images, ctx.paths.output_dir, filename_prefix, "output", chunks, compress_level=4,
                            attempt_key=f"{ctx.prompt_id}\0{ctx.node_id}")
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
