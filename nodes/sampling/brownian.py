"""Brownian-tree noise for the SDE samplers, drawn as ComfyUI draws it so a seed gives ComfyUI's image.

ComfyUI's dpmpp_sde, dpmpp_2m_sde and dpmpp_3m_sde query one `torchsde.BrownianTree` (CPU, float32,
entropy = the seed) spanning the schedule's smallest positive sigma to its largest: the noise of a
step from sigma to sigma_next is the tree's increment over that interval, normalised to unit variance.
"""

from __future__ import annotations

import torch
import torchsde


class BrownianNoise:
    """Unit-variance noise for the step sigma -> sigma_next, from one Brownian tree per sampling run.

    The tree is built on first use: a schedule that only ever jumps to sigma 0 never queries it.
    """

    def __init__(self, seed: int, like: torch.Tensor, sigmas: torch.Tensor):
        sigmas = sigmas.detach().float().cpu()
        self._low = sigmas[sigmas > 0].min()
        self._high = sigmas.max()
        self._seed = int(seed)
        self._shape = tuple(like.shape)
        self._device, self._dtype = like.device, like.dtype
        self._tree: torchsde.BrownianTree | None = None

    def _increment(self, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
        if self._tree is None:
            w0 = torch.zeros(self._shape, dtype=torch.float32)
            self._tree = torchsde.BrownianTree(self._low, w0, self._high, entropy=self._seed)
        return self._tree(t0, t1)

    def __call__(self, sigma: float | torch.Tensor, sigma_next: float | torch.Tensor) -> torch.Tensor:
        s0 = torch.as_tensor(sigma, dtype=torch.float32).cpu()
        s1 = torch.as_tensor(sigma_next, dtype=torch.float32).cpu()
        # The tree runs forward in time; sampling runs down in sigma, so the increment changes sign.
        w = self._increment(s0, s1) if s0 < s1 else -self._increment(s1, s0)
        return (w / (s1 - s0).abs().sqrt()).to(self._device, self._dtype)
