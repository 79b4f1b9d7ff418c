"""Seeded noise, drawn exactly as ComfyUI draws it so a seed gives the same image.

All draws happen on the CPU in float32 from a generator local to the call, so the
result does not depend on the device, and the process-wide torch RNG is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SEED_SPACE = 2**64
"""Seeds are taken modulo 2**64, the range torch generators accept (negative seeds wrap the same way
torch wraps them)."""


def _generator(seed: int) -> torch.Generator:
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed) % SEED_SPACE)
    return generator


def initial_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """The starting noise of a latent: bit-identical to `torch.manual_seed(seed); torch.randn(shape)`."""
    return torch.randn(tuple(shape), generator=_generator(seed), dtype=torch.float32, device="cpu")


class StepNoise:
    """Per-step noise of ancestral and SDE samplers.

    ComfyUI seeds a fresh generator with `seed + 1` (on the CPU) and draws one
    `randn` of the latent's shape per call; we do the same, always on the CPU, and
    move the draw to the latent's device. `seed + 1` wraps to 0 at 2**64 - 1, where
    ComfyUI itself would fail with an overflow.
    """

    def __init__(self, seed: int, like: torch.Tensor):
        self.generator = _generator(int(seed) + 1)
        self._shape = tuple(like.shape)
        self._device = like.device
        self._dtype = like.dtype

    def __call__(self) -> torch.Tensor:
        draw = torch.randn(self._shape, generator=self.generator, dtype=torch.float32, device="cpu")
        return draw.to(device=self._device, dtype=self._dtype)


def inpaint_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """The separate noise ComfyUI's `ddim` uses to re-noise the kept region when inpainting (seeded with seed + 1)."""
    return initial_noise(int(seed) + 1, shape)
