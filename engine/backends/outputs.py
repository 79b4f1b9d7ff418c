"""Output files written on a worker's machine, shipped to the server's output and temp folders.

A worker without shared storage writes into a scratch folder of its own and sends each new file
once, as a `FILE` event ahead of the `executed` event that names it. The server stores it without
ever overwriting (a taken name gets the next free counter, ComfyUI's `prefix_00001_.png` style)
and rewrites the names in that worker's events and history outputs to the names it chose.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Iterator

from engine.paths import Paths, contained

FOLDER_TYPES = ("output", "temp")
_COUNTED = re.compile(r"^(?P<stem>.*)_(?P<counter>\d+)_(?P<suffix>\.[^.]*)$")

FileRef = tuple[str, str, str]  # (type, subfolder, filename)


def file_refs(ui: Any) -> Iterator[dict[str, Any]]:
    """Every `{filename, subfolder, type}` entry of an output node's UI data (output and temp files)."""
    if isinstance(ui, dict):
        if isinstance(ui.get("filename"), str) and ui.get("type") in FOLDER_TYPES:
            yield ui
            return
        for value in ui.values():
            yield from file_refs(value)
    elif isinstance(ui, list):
        for value in ui:
            yield from file_refs(value)


def _ref(entry: dict[str, Any]) -> FileRef:
    return entry["type"], entry.get("subfolder") or "", entry["filename"]


def _folder(paths: Paths, folder_type: str) -> Path:
    return paths.output_dir if folder_type == "output" else paths.temp_dir


class OutputShipper:
    """Worker side: the files of an `executed` event not sent before, as FILE event payloads."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self._sent: set[FileRef] = set()

    def new_files(self, ui: Any) -> list[dict[str, Any]]:
        files = []
        for entry in file_refs(ui):
            ref = _ref(entry)
            if ref in self._sent:
                continue
            folder_type, subfolder, filename = ref
            path = contained(_folder(self.paths, folder_type), f"{subfolder}/{filename}" if subfolder else filename)
            files.append({"type": folder_type, "subfolder": subfolder, "filename": filename,
                          "data": path.read_bytes()})
            self._sent.add(ref)
        return files


def _candidates(filename: str) -> Iterator[str]:
    yield filename
    match = _COUNTED.match(filename)
    if match:
        width, counter = len(match["counter"]), int(match["counter"])
        while True:
            counter += 1
            yield f"{match['stem']}_{counter:0{width}}_{match['suffix']}"
    stem, dot, suffix = filename.rpartition(".")
    stem, suffix = (stem, dot + suffix) if dot else (filename, "")
    for n in range(1, 1_000_000):
        yield f"{stem} ({n}){suffix}"


class OutputReceiver:
    """Server side: stores shipped files and renames references to them, per worker."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self._names: dict[tuple[str, FileRef], str] = {}
        self._lock = threading.Lock()

    def receive(self, worker_id: str, file: dict[str, Any]) -> str:
        """Write one shipped file (never overwriting); returns the name it was stored under."""
        ref = (file["type"], file.get("subfolder") or "", file["filename"])
        if ref[0] not in FOLDER_TYPES:
            raise ValueError(f"a worker sent a file for folder {ref[0]!r}; expected output or temp")
        root = _folder(self.paths, ref[0])
        with self._lock:
            for name in _candidates(ref[2]):
                path = contained(root, f"{ref[1]}/{name}" if ref[1] else name)
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with open(path, "xb") as handle:
                        handle.write(file["data"])
                except FileExistsError:
                    continue
                self._names[(worker_id, ref)] = name
                return name
        raise FileExistsError(ref[2])

    def rename(self, worker_id: str, ui: Any) -> Any:
        """`ui` with each shipped file's name replaced by the name the server stored it under (in place)."""
        for entry in file_refs(ui):
            name = self._names.get((worker_id, _ref(entry)))
            if name is not None:
                entry["filename"] = name
        return ui
