"""Content hashes of model files, for the reproducibility record saved with each image.

Hashing a multi-GB checkpoint takes seconds, so each result is remembered in a small JSON file
next to the models, keyed by the file's name, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

CACHE_NAME = ".sdgraph-hashes.json"


def sha256_file(path: Path, chunk: int = 16 * 2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_hash(path: Path, cache_dir: Path) -> str:
    """The file's sha256, from the cache when its size and mtime are unchanged."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = cache_dir / CACHE_NAME
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    cache[key] = sha256_file(path)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(cache, out)
        os.replace(temp, cache_file)
    except OSError:
        pass  # a read-only models folder only costs a re-hash next time
    return cache[key]
