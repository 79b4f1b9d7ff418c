"""Values kept in memory for a module (a compiled call, a compile under way, a weights digest), gone with it.

A compiled UNet holds a copy of its module's weights, so keeping it after the module is unloaded would keep
gigabytes for nothing until something else pushed it out. Each entry here refers to its module weakly and is
dropped when the module is collected; the patches it was made with must still be the module's for it to
be found. Thread-safe: a background compile and the sampler share entries.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator

import torch

# A removed entry: its key, its module (None if collected meanwhile), the patches it was made with, its value.
Taken = tuple[Hashable, "torch.nn.Module | None", tuple, Any]


class ModuleMemory:
    """Entries by key, each with its module (weakly), the patches it was made with, and a value; the least
    recently used beyond `bound` (None: unbounded) and those whose module was collected are dropped."""

    def __init__(self, bound: int | None = None) -> None:
        self.bound = bound
        self._entries: OrderedDict[Hashable, tuple[weakref.ref, tuple, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._watched: weakref.WeakSet = weakref.WeakSet()
        self._collected_since = False  # a module was collected: drop its entries once the lock is free

    def get(self, key: Hashable, module: torch.nn.Module, patches: tuple) -> tuple[bool, Any]:
        """(True, the value) if `key` holds one made for this module with these patches, else (False, None)."""
        with self._locked():
            entry = self._entries.get(key)
            if entry is None or entry[0]() is not module or entry[1] != patches:
                return False, None
            self._entries.move_to_end(key)
            return True, entry[2]

    def put(self, key: Hashable, module: torch.nn.Module, patches: tuple, value: Any) -> None:
        if module not in self._watched:
            self._watched.add(module)
            weakref.finalize(module, self._module_collected)
        with self._locked():
            self._entries[key] = (weakref.ref(module), patches, value)
            self._entries.move_to_end(key)
            while self.bound is not None and len(self._entries) > self.bound:
                self._entries.popitem(last=False)

    def take(self, wanted: Callable[[Any, Any], bool]) -> list[Taken]:
        """Remove the entries for which `wanted(key, value)` is true, and return them."""
        with self._locked():
            keys = [key for key, (_, _, value) in self._entries.items() if wanted(key, value)]
            taken = [(key, *self._entries.pop(key)) for key in keys]
        return [(key, module_ref(), patches, value) for key, module_ref, patches, value in taken]

    def values(self) -> list[Any]:
        with self._locked():
            return [value for _, _, value in self._entries.values()]

    def clear(self) -> None:
        with self._locked():
            self._entries.clear()

    def __len__(self) -> int:
        with self._locked():
            return len(self._entries)

    def _module_collected(self) -> None:
        # Runs wherever the module's last reference goes, possibly inside one of this object's own updates
        # (a garbage collection there): then the update holding the lock drops the entries as it releases.
        self._collected_since = True
        if self._lock.acquire(blocking=False):
            try:
                self._drop_collected()
            finally:
                self._lock.release()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            yield
            self._drop_collected()

    def _drop_collected(self) -> None:
        if self._collected_since:
            self._collected_since = False
            for key in [key for key, (module_ref, _, _) in self._entries.items() if module_ref() is None]:
                del self._entries[key]
