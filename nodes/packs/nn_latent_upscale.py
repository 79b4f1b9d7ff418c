"""Ttl/ComfyUi_NNLatentUpscale's `NNLatentUpscale` (nn_upscale.py): latents upscaled 1–2× by a small net.

The pack loads `sdxl_resizer.pt` or `sd15_resizer.pt` from its own folder; here they are read from
`models/latent_upscale_models` under the same names (copy them from the pack's repository).
"""

from __future__ import annotations

from typing import Any

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import Paths, UnsafePathError
from engine.types import LATENT, Choice, Float, Link
from nodes.models.latent_resizer import load_latent_resizer
from nodes.models.runtime import runtime_from_settings
from nodes.pixel_cap import check_image_size

KIND = "latent_upscale_models"
RESIZER_FILES = {"SDXL": "sdxl_resizer.pt", "SD 1.x": "sd15_resizer.pt"}
# The pack scales latents by SDXL's VAE factor around the net for both versions (its training did so).
LATENT_SCALE = 0.13025


def resizer_problem(paths: Paths, version: str) -> str | None:
    """Why the resizer file of `version` cannot be found (None when it is there)."""
    name = RESIZER_FILES.get(version)
    if name is None:
        return f"version must be one of {', '.join(RESIZER_FILES)}, got {version!r}"
    try:
        paths.model_path(KIND, name)
    except (FileNotFoundError, UnsafePathError):
        folders = ", ".join(str(folder) for folder in paths.model_dirs(KIND))
        return (f"NNLatentUpscale needs {name} (shipped in the repository Ttl/ComfyUi_NNLatentUpscale) "
                f"in {folders}")
    return None


@node("NNLatentUpscale", category="latent", outputs=[Out(LATENT)], uses_settings=["precision", "device"])
class NNLatentUpscale:
    """The latent upscaled by `upscale` with the pack's resizer net for the model family (`version`)."""

    latent = Link(LATENT)
    version = Choice(list(RESIZER_FILES))
    upscale = Float(1.5, min=1.0, max=2.0, step=0.01)

    def validate_inputs(self, paths: Paths, version: str = "SDXL", **_: Any) -> str | None:
        return resizer_problem(paths, version)

    def fingerprint(self, paths: Paths, version: str = "SDXL", **_: Any) -> str:
        """The resizer file's stamp: a replaced file re-runs the node."""
        return paths.model_stamp(KIND, RESIZER_FILES.get(version, version))

    def run(self, ctx: RunContext, latent: dict, version: str, upscale: float) -> tuple:
        problem = resizer_problem(ctx.paths, version)
        if problem:
            raise FileNotFoundError(problem)
        samples = latent["samples"]
        check_image_size(ctx, round(samples.shape[-1] * upscale) * 8, round(samples.shape[-2] * upscale) * 8,
                         samples.shape[0], "upscale")
        runtime = runtime_from_settings(ctx.settings)
        # The pack runs fp16 where ComfyUI would (GPUs), else fp32.
        dtype = torch.float16 if runtime.dtype == torch.float16 else torch.float32
        resizer = load_latent_resizer(ctx.paths.model_path(KIND, RESIZER_FILES[version])).to(runtime.device, dtype)
        scaled = LATENT_SCALE * samples.to(runtime.device, dtype)
        out = resizer(scaled, scale=upscale) / LATENT_SCALE
        # Only `samples` comes out, as in the pack: a noise mask or batch index is dropped.
        return ({"samples": out.float().cpu()},)
