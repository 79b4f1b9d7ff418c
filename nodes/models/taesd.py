"""TAESD, the tiny autoencoder (`models/vae_approx`): as a VAE for VAELoader, and as a preview decoder.

The original files (`taesd_encoder.pth`, `taesdxl_decoder.safetensors`, ...) are state dicts of
`nn.Sequential` stacks ("1.conv.0.weight"); diffusers' EncoderTiny/DecoderTiny hold the same layers
under `layers.` (the decoder without the original's leading parameter-free Clamp, which its forward
applies), so the files map key by key onto AutoencoderTiny. TAESD works on model-space latents
(VAE latents times the family's scaling factor) and images in 0..1, as ComfyUI's comfy/taesd does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import torch

from engine.paths import ModelFiles, Paths
from nodes.models.modules import assign_weights
from nodes.models.state_dict_files import CheckpointFileError, open_state_dict

KIND = "vae_approx"
# VAELoader's names for a TAESD pair, with the latent scaling factor of the family each one serves.
TAESD_SCALES = {"taesd": 0.18215, "taesdxl": 0.13025}


def taesd_file(paths: Paths, prefix: str) -> Path | None:
    """The first `vae_approx` file whose name starts with `prefix` (in name order), as ComfyUI picks it."""
    name = next((n for n in paths.list_models(KIND) if Path(n).name.startswith(prefix)), None)
    return paths.model_path(KIND, name) if name is not None else None


def taesd_vae_names(paths: Paths) -> list[str]:
    """The TAESD pairs VAELoader offers: a name appears when both `<name>_encoder.*` and `<name>_decoder.*` exist."""
    return [name for name in TAESD_SCALES
            if taesd_file(paths, f"{name}_encoder.") and taesd_file(paths, f"{name}_decoder.")]


class VaeChoices(ModelFiles):
    """VAELoader's choices: the `vae` folder's files, then `taesd`/`taesdxl` when their halves exist."""

    def __init__(self) -> None:
        super().__init__("vae")

    def choices(self, paths: Paths | None) -> list[str]:
        paths = paths or Paths()
        return super().choices(paths) + taesd_vae_names(paths)


def taesd_fingerprint(paths: Paths, name: str) -> str:
    """Both halves' sizes and modification times (replacing either one reloads the pair)."""
    stamps = []
    for half in ("encoder", "decoder"):
        path = taesd_file(paths, f"{name}_{half}.")
        stamps.append("missing" if path is None else f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns}")
    return "|".join(stamps)


def _original_to_diffusers(state: Mapping[str, torch.Tensor], half: str, path: Path) -> dict[str, torch.Tensor]:
    """`N.rest` of the original Sequential → `layers.M.rest` of EncoderTiny/DecoderTiny (M = N - 1 in the
    decoder: its index 0 is the Clamp)."""
    shift = 1 if half == "decoder" else 0
    mapped = {}
    for key, value in state.items():
        index, _, rest = key.partition(".")
        if not index.isdigit() or int(index) < shift:
            raise CheckpointFileError(f"{path}: {key!r} is not a TAESD {half} weight (expected e.g. '1.conv.0.weight')")
        mapped[f"layers.{int(index) - shift}.{rest}"] = value
    return mapped


def _load_half(module: torch.nn.Module, path: Path, half: str, dtype: torch.dtype | None, device: torch.device,
               memory_format: torch.memory_format) -> torch.nn.Module:
    source = open_state_dict(path)
    weights = _original_to_diffusers(source.tensors, half, path)
    return assign_weights(module, weights, dtype=dtype, device=device, component=f"{path.name}: TAESD {half}",
                          memory_format=memory_format, release=source.release)


def _empty_autoencoder():
    from diffusers import AutoencoderTiny

    with torch.device("meta"):
        return AutoencoderTiny()


def load_decoder(path: Path, dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                 memory_format: torch.memory_format = torch.contiguous_format) -> torch.nn.Module:
    """A TAESD decoder file as diffusers' DecoderTiny: model-space latents → images in -1..1."""
    return _load_half(_empty_autoencoder().decoder, path, "decoder", dtype, torch.device(device), memory_format)


@dataclass(frozen=True)
class ExactLatents:
    """What `AutoencoderKL.encode(...).latent_dist` offers VAEEncode: TAESD's latents are not a distribution."""

    mean: torch.Tensor

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean


@dataclass(frozen=True)
class EncodedLatents:
    latent_dist: ExactLatents


class TaesdVae(torch.nn.Module):
    """TAESD behind AutoencoderKL's `decode(z).sample` and `encode(x).latent_dist`, on VAE-space latents
    (what a LATENT holds) and images in -1..1, so the VAE nodes use it like any VAE."""

    def __init__(self, encoder: torch.nn.Module, decoder: torch.nn.Module, scaling_factor: float) -> None:
        super().__init__()
        self.encoder, self.decoder, self.scaling_factor = encoder, decoder, scaling_factor

    def decode(self, latents: torch.Tensor):
        from diffusers.models.autoencoders.vae import DecoderOutput

        return DecoderOutput(sample=self.decoder(latents * self.scaling_factor))

    def encode(self, images: torch.Tensor) -> EncodedLatents:
        return EncodedLatents(ExactLatents(self.encoder(images) / self.scaling_factor))


def load_taesd_vae(paths: Paths, name: str, dtype: torch.dtype | None, device: str | torch.device,
                   memory_format: torch.memory_format = torch.contiguous_format) -> TaesdVae:
    """VAELoader's `taesd`/`taesdxl`: both halves from `models/vae_approx`."""
    if name not in TAESD_SCALES:
        raise ValueError(f"unknown TAESD {name!r} (expected one of {', '.join(TAESD_SCALES)})")
    files = {half: taesd_file(paths, f"{name}_{half}.") for half in ("encoder", "decoder")}
    missing = [f"{name}_{half}.*" for half, path in files.items() if path is None]
    if missing:
        raise FileNotFoundError(f"{name} needs {' and '.join(missing)} in {paths.model_dirs(KIND)[0]}")
    tiny = _empty_autoencoder()
    halves = {half: _load_half(getattr(tiny, half), path, half, dtype, torch.device(device), memory_format)
              for half, path in files.items() if path is not None}
    return TaesdVae(halves["encoder"], halves["decoder"], TAESD_SCALES[name])


def preview_decoder(paths: Paths, sdxl: bool) -> torch.nn.Module | None:
    """The TAESD decoder for the family's previews (`taesd_decoder*` or `taesdxl_decoder*`, as ComfyUI
    looks them up), loaded once per file version; None when there is none."""
    path = taesd_file(paths, "taesdxl_decoder" if sdxl else "taesd_decoder")
    if path is None:
        return None
    stat = path.stat()
    return _cached_decoder(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4)
def _cached_decoder(path: str, _size: int, _mtime_ns: int) -> torch.nn.Module:
    return load_decoder(Path(path), torch.float32, "cpu")
