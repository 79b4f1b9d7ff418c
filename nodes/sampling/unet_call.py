"""What a UNet call is for, for patches that need it: the sigma it denoises at and which batch
chunks are the negative side (ComfyUI's `sigmas` and `cond_or_uncond` transformer options).

The denoiser sets it around each UNet call (`unet_call_scope`); hooks read it with `current_unet_call`.
It is scoped to the call (a context variable, reset afterwards), never stored on the module.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class UnetCall:
    """sigma: the noise level of this call; cond_or_uncond: 0 (positive) or 1 (negative) per chunk of
    the batch, in batch order."""

    sigma: float
    cond_or_uncond: tuple[int, ...]


_CURRENT: ContextVar[UnetCall | None] = ContextVar("unet_call", default=None)


@contextmanager
def unet_call_scope(call: UnetCall) -> Iterator[UnetCall]:
    token = _CURRENT.set(call)
    try:
        yield call
    finally:
        _CURRENT.reset(token)


def current_unet_call() -> UnetCall | None:
    """The call in progress, or None outside a denoiser (a direct UNet call: one positive chunk)."""
    return _CURRENT.get()
