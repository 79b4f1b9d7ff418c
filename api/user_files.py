"""The user's folder (`--user-dir`/default): names resolved inside it, listings, and atomic writes.

Shared by the user-data and settings routes. Every name from a request goes through
`resolve_user_path`, which refuses anything that leaves the folder (`..`, absolute, NUL, or a
symlink out), so the queue database beside the folder stays out of reach. Files are written to a
hidden temporary file in the same folder and renamed over the target: a crash leaves the old file
or the new one, never a truncated one.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from api.responses import ApiError
from engine.paths import UnsafePathError, contained

# Temporary files are hidden (listings leave out dot files) and carry this suffix (v2 leaves them out).
PARTIAL_SUFFIX = ".sdgraph-partial"


def resolve_user_path(root: Path, name: str, status: int = 403) -> Path:
    """`root/name` resolved, or an ApiError(`status`) when it would leave `root`.

    ComfyUI decodes a name once more when it still holds a `%` (the front end sends
    `workflows%2Fa.json`, which some proxies pass on encoded); we match that on purpose.
    """
    if "%" in name:
        name = unquote(name)
    try:
        return contained(root, name)
    except UnsafePathError as exc:
        raise ApiError(status, "path_not_allowed", "The path leaves the user's folder", str(exc)) from None


def relative_name(path: Path, base: Path) -> str:
    return path.relative_to(base.resolve()).as_posix()


def file_info(path: Path, base: Path) -> dict[str, Any]:
    """ComfyUI's FileInfo: the path relative to `base`, size, and times in integer milliseconds."""
    info = path.stat()
    return {"path": relative_name(path, base), "size": info.st_size, "modified": int(info.st_mtime * 1000),
            "created": int(info.st_ctime * 1000)}


def _inside(root: Path, path: Path) -> bool:
    try:
        contained(root, path.relative_to(root).as_posix())
    except (UnsafePathError, ValueError):
        return False
    return True


def list_files(folder: Path, root: Path, recurse: bool) -> list[Path]:
    """The files under `folder` (its subfolders too with `recurse`), sorted, as ComfyUI's glob finds
    them: hidden names left out; symlinks that lead out of `root` left out too."""
    found: list[Path] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _inside(root, Path(current) / d))
        for name in files:
            path = Path(current) / name
            if not name.startswith(".") and path.is_file() and _inside(root, path):
                found.append(path)
        if not recurse:
            break
    return sorted(found)


def list_tree(folder: Path, root: Path) -> list[dict[str, Any]]:
    """ComfyUI's v2 listing of everything under `folder`: `{name, path, type}` for folders and
    files, files with `size` and `modified` (float seconds); folders first, then by name."""
    entries: list[dict[str, Any]] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if _inside(root, Path(current) / d)]
        for name in dirs:
            entries.append({"name": name, "path": relative_name(Path(current) / name, root), "type": "directory"})
        for name in files:
            path = Path(current) / name
            if name.endswith(PARTIAL_SUFFIX) or not _inside(root, path):
                continue
            entry: dict[str, Any] = {"name": name, "path": relative_name(path, root), "type": "file"}
            try:
                info = path.stat()
                entry.update(size=info.st_size, modified=info.st_mtime)
            except OSError:
                pass  # vanished or unreadable: listed without them, as ComfyUI does
            entries.append(entry)
    entries.sort(key=lambda e: (e["type"] != "directory", e["name"].lower()))
    return entries


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ApiError(400, "invalid_filename", "The file's folder cannot be created", str(exc)) from None


def replace_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash or a full disk leaves the old file or the new one, never a
    mix: a synced temporary file beside it, renamed over it. OSError as raised, the temporary file gone."""
    _place_synced(path, data, os.replace)


def _place_synced(path: Path, data: bytes, place: Callable[[Path, Path], None]) -> None:
    """Write `data` into a synced temporary file beside `path`, then `place(temp, path)` it; the temporary
    file is gone afterwards whatever happened."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=PARTIAL_SUFFIX)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        place(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_file(path: Path, data: bytes, overwrite: bool) -> None:
    """Write `data` to `path` atomically; 409 when it exists and not `overwrite`, 400 when the
    file system refuses the name (too long, a folder in the way)."""
    _make_parent(path)
    try:
        _place_synced(path, data, os.replace if overwrite else _link_new)
    except FileExistsError:
        raise ApiError(409, "file_exists", "File already exists", path.name) from None
    except OSError as exc:  # ComfyUI answers 400 for any refusal of the file system
        raise ApiError(400, "write_failed", "The file could not be written under that name", str(exc)) from None


def _link_new(source: Path, target: Path) -> None:
    """Give `source`'s file the name `target` only if that name is free (FileExistsError), atomically."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if target.exists() or target.is_symlink():
            raise FileExistsError(target) from None
        os.replace(source, target)


def move_file(source: Path, dest: Path, overwrite: bool) -> None:
    """Rename `source` (a file or a folder) to `dest`; 409 when `dest` exists and not `overwrite`,
    or when it is a folder (ComfyUI would move into it; we never merge folders)."""
    if source == dest:
        return
    _make_parent(dest)
    try:
        if dest.is_dir():
            raise FileExistsError(dest)
        if source.is_dir():
            if dest.exists():
                raise FileExistsError(dest)
            os.rename(source, dest)
        elif overwrite:
            os.replace(source, dest)
        else:
            _link_new(source, dest)
            if source.exists():
                source.unlink()
    except FileExistsError:
        raise ApiError(409, "file_exists", "File already exists", dest.name) from None
    except OSError as exc:
        raise ApiError(400, "move_failed", "The file could not be moved there", str(exc)) from None


def delete_file(path: Path) -> None:
    """Remove the file at `path`; 404 when there is none, 400 for a folder."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ApiError(404, "file_not_found", "No such file", path.name) from None
    if stat.S_ISDIR(mode):
        raise ApiError(400, "not_a_file", "The path is a folder, not a file", path.name)
    path.unlink()
