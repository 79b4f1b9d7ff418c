"""The on-disk cache of compiled models: one folder per key under the user's cache folder, bounded in size.

A compiled model costs a minute or more to make and seconds to load, so it is kept across processes. Each
entry is written into a private temporary folder and renamed into place in one step: concurrent writers of
the same key cannot interleave their files (the first rename wins, the other copy is dropped), and a reader
never sees half an entry. Reading an entry marks it used; when the folder grows past its bound, the
least recently used entries go first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

DEFAULT_BOUND_BYTES = 8 * 2**30  # about two full-size SD1.5 UNets in fp32
_TEMP_PREFIX = ".writing-"
_DOOMED_PREFIX = ".evicting-"


def user_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """`$SDGRAPH_CACHE_DIR`, else `$XDG_CACHE_HOME/sdgraph`, else `~/.cache/sdgraph`."""
    if environ.get("SDGRAPH_CACHE_DIR"):
        return Path(environ["SDGRAPH_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sdgraph"


def cache_key(parts: Mapping[str, Any]) -> str:
    """A folder name for an entry: a digest of everything that makes the compiled model what it is."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass  # evicted meanwhile by another process
    return total


@dataclass
class CompileCache:
    """Entries under `root`, at most `bound_bytes` in all (a single larger entry is kept alone)."""

    root: Path
    bound_bytes: int = DEFAULT_BOUND_BYTES

    def entry(self, key: str) -> Path | None:
        """The entry's folder, marked as just used; None when absent."""
        folder = self.root / key
        if not folder.is_dir():
            return None
        try:
            os.utime(folder)
        except OSError:
            return None  # evicted between the check and now
        return folder

    def store(self, key: str, write: Callable[[Path], None]) -> Path:
        """Write an entry with `write(folder)` into a temporary folder, rename it into place, then evict
        the least recently used entries beyond the bound. Returns the entry's folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=self.root))
        final = self.root / key
        try:
            write(temp)
            try:
                os.rename(temp, final)  # atomic; fails when another writer got there first
            except OSError:
                if not final.is_dir():
                    raise
        finally:
            if temp.exists():
                shutil.rmtree(temp, ignore_errors=True)
        self.evict(keep=key)
        return final

    def entries(self) -> list[tuple[float, str, int]]:
        """(last used, key, bytes) of every complete entry, oldest first."""
        found = []
        for folder in self.root.iterdir() if self.root.is_dir() else ():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                found.append((folder.stat().st_mtime, folder.name, _folder_bytes(folder)))
            except OSError:
                continue
        return sorted(found)

    def total_bytes(self) -> int:
        return sum(size for _, _, size in self.entries())

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove the least recently used entries until the rest fit the bound; returns their keys.
        An entry is renamed away before it is deleted, so no reader finds it half removed."""
        entries = self.entries()
        total = sum(size for _, _, size in entries)
        removed = []
        for _, key, size in entries:
            if total <= self.bound_bytes:
                break
            if key == keep:
                continue
            doomed = self.root / f"{_DOOMED_PREFIX}{key}-{os.getpid()}-{time.monotonic_ns()}"
            try:
                os.rename(self.root / key, doomed)
            except OSError:
                continue  # another process evicted it
            shutil.rmtree(doomed, ignore_errors=True)
            total -= size
            removed.append(key)
        return removed
