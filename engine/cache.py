"""The node-output cache: signature keys, a bounded LRU store, and why-did-it-run explanations.

A node's signature is its class, version and constant inputs plus the keys of the upstream
outputs it reads (and, when declared, a fingerprint of external state such as a file's hash).
Its node id is not part of it, so identical subgraphs share entries. The store is bounded in
entries and estimated bytes; evicting an entry never affects a run in progress, which holds
its own references.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class Signature:
    """What a node's output depends on; `key` is its stable digest."""

    class_type: str
    version: str
    constants: tuple[tuple[str, str], ...]
    upstream: tuple[tuple[str, str, int, str], ...]  # (input name, upstream node id, slot, upstream key)
    external: str | None = None

    @cached_property
    def key(self) -> str:
        # repr of tuples of str/int is unambiguous and much cheaper than JSON on 10,000-node graphs.
        material = repr((self.class_type, self.version, self.constants,
                         tuple((name, slot, key) for name, _, slot, key in self.upstream), self.external))
        return hashlib.blake2b(material.encode(), digest_size=16).hexdigest()


_SCALARS = (str, int, float, bool, type(None))


def canonical(value: Any) -> str:
    """A stable text form of a constant, so equal values give equal keys (1, 1.0, "1" differ)."""
    if type(value) in _SCALARS:
        return repr(value)
    return json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))


def explain_change(old: Signature | None, new: Signature) -> str:
    """Why a node whose result was not cached had to run, in words."""
    if old is None:
        return "new node (no earlier run of this node id)"
    if old.class_type != new.class_type or old.version != new.version:
        return f"node type changed ({old.class_type} {old.version} → {new.class_type} {new.version})"
    reasons = []
    old_constants, new_constants = dict(old.constants), dict(new.constants)
    for name in sorted(set(old_constants) | set(new_constants)):
        if old_constants.get(name) != new_constants.get(name):
            reasons.append(f"input '{name}' changed ({old_constants.get(name, 'unset')} → "
                           f"{new_constants.get(name, 'unset')})")
    old_up = {name: (node, slot, key) for name, node, slot, key in old.upstream}
    new_up = {name: (node, slot, key) for name, node, slot, key in new.upstream}
    for name in sorted(set(old_up) | set(new_up)):
        before, after = old_up.get(name), new_up.get(name)
        if before is None or after is None or before[:2] != after[:2]:
            reasons.append(f"input '{name}' was relinked")
        elif before[2] != after[2]:
            reasons.append(f"upstream node {after[0]} (input '{name}') changed")
    if old.external != new.external:
        reasons.append("external state changed (e.g. the file's content)")
    if reasons:
        return "; ".join(reasons)
    return "unchanged, but its result was no longer cached (evicted)"


def estimate_nbytes(value: Any, _depth: int = 0) -> int:
    """Rough memory held by a node output: tensors/arrays by `nbytes`, containers recursively.

    Objects that know better expose `estimated_nbytes` (e.g. a wrapped model).
    """
    if type(value) in _SCALARS:
        return sys.getsizeof(value)
    if _depth > 8:
        return 0
    size = getattr(value, "estimated_nbytes", None)
    if isinstance(size, int):
        return size
    size = getattr(value, "nbytes", None)
    if isinstance(size, int):
        return size
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if isinstance(value, dict):
        return sum(estimate_nbytes(v, _depth + 1) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sum(estimate_nbytes(v, _depth + 1) for v in value)
    return sys.getsizeof(value)


@dataclass
class CacheEntry:
    outputs: tuple
    ui: dict[str, Any] | None
    nbytes: int


class OutputCache:
    """LRU store of node outputs by signature key, bounded by entries and estimated bytes.

    Thread-safe: a worker reports its keys (for the dispatcher's affinity) while a prompt runs and
    changes the cache in another thread."""

    def __init__(self, max_entries: int = 1_000, max_bytes: int = 8 * 2**30) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self._last_signature: OrderedDict[str, Signature] = OrderedDict()
        self.evictions = 0

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> CacheEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: str, outputs: tuple, ui: dict[str, Any] | None) -> None:
        """Store a result; one larger than the whole byte budget is not kept at all."""
        nbytes = estimate_nbytes(outputs) + (estimate_nbytes(ui) if ui else 0)
        if nbytes > self.max_bytes or self.max_entries <= 0:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = CacheEntry(outputs, ui, nbytes)
            self._bytes += nbytes
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
                self.evictions += 1

    def keys(self) -> list[str]:
        """The keys held, least recently used first (what a worker reports for affinity)."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def remember(self, node_id: str, signature: Signature) -> Signature | None:
        """Record the signature this node id had in this run; return the one it had before."""
        previous = self._last_signature.pop(node_id, None)
        self._last_signature[node_id] = signature
        while len(self._last_signature) > max(self.max_entries, 10_000) * 2:
            self._last_signature.popitem(last=False)
        return previous
