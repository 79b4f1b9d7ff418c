"""GLIGEN grounding carried by conds, attached around one batched UNet call on each cond's rows
(the model side is nodes.models.gligen_loading; conds without it run without GLIGEN, as in ComfyUI)."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, Iterator, Sequence


@contextmanager
def grounded(unet: Any, conds: Sequence[Any], latent_shape: Sequence[int]) -> Iterator[None]:
    """`unet` with each grounded cond's gated attention on its chunk of the batch [cond 0 rows, cond 1 rows, ...]."""
    rows = latent_shape[0]
    with ExitStack() as stack:
        for index, cond in enumerate(conds):
            if cond.grounding is not None:
                chunk = slice(index * rows, (index + 1) * rows)
                stack.enter_context(cond.grounding.attached(unet, chunk, tuple(latent_shape)))
        yield
