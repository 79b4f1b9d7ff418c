"""The value on a CONDITIONING socket: one or more prompt encodings, each with where and how
strongly it applies. Immutable: nodes that change conditioning return new entries."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class CondEntry:
    """One encoded prompt. `area` is (height, width, y, x) in latent pixels, None for the whole image."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    area: tuple[int, int, int, int] | None = None
    strength: float = 1.0

    def with_(self, **changes) -> "CondEntry":
        return replace(self, **changes)

    @property
    def nbytes(self) -> int:
        return self.embeds.nbytes + (self.pooled.nbytes if self.pooled is not None else 0)


Conditioning = tuple[CondEntry, ...]
