"""A full-size SD1.5-architecture checkpoint with random weights, for the benchmarks.

Built deterministically (seeded, fixed key order) from the shipped SD1.5 configs and written in
the real single-file LDM layout in fp16 (about 2 GB), through `ldm_export` as the tiny built-in
model is. Cached under `bench/.cache/`; generated once. Its images are noise, but every tensor
has the real shape, so loading and sampling cost what a real SD1.5 checkpoint costs.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
MODELS_DIR = CACHE_DIR / "models"
CHECKPOINT_NAME = "sd15-random-full.safetensors"
SEED = 20261124


def _random_state(module, generator) -> dict:
    """Seeded fp16 values for every tensor: matrices and kernels ~ N(0, 1/fan_in), so activations
    keep their scale through the network; norm scales 1 + small noise; biases small."""
    import torch

    state = {}
    for key, value in sorted(module.state_dict().items()):
        shape = tuple(value.shape)
        if len(shape) >= 2:
            tensor = torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
        elif key.endswith("weight"):
            tensor = 1.0 + 0.02 * torch.randn(shape, generator=generator)
        else:
            tensor = 0.02 * torch.randn(shape, generator=generator)
        state[key] = tensor.half()
    return state


def ensure_full_size_checkpoint(models_dir: Path = MODELS_DIR) -> Path:
    """The checkpoint's path under `models_dir/checkpoints`, generated if absent."""
    path = models_dir / "checkpoints" / CHECKPOINT_NAME
    if path.exists():
        return path
    import torch
    from safetensors.torch import save_file

    from nodes.models.family import SD15
    from nodes.models.ldm_export import export_ldm_checkpoint
    from nodes.models.modules import build_text_encoder, build_unet, build_vae
    from nodes.models.shipped_configs import shipped_configs

    print(f"generating the full-size random SD1.5 checkpoint at {path} (once)", file=sys.stderr)
    configs = shipped_configs(SD15)
    generator = torch.Generator().manual_seed(SEED)
    unet, vae = build_unet(configs.unet), build_vae(configs.vae)  # meta: shapes and names only
    encoder = build_text_encoder(configs.text_encoders["text_encoder"])
    state = export_ldm_checkpoint(SD15, _random_state(unet, generator), unet.config, _random_state(vae, generator),
                                  vae.config, [_random_state(encoder, generator)])
    state = {k: v.contiguous() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    os.close(handle)
    try:
        save_file(state, temp, metadata={"description": "sdgraph benchmark: SD1.5 architecture, random weights"})
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return path


TINY_MODELS_DIR = CACHE_DIR / "tiny-models"


def bench_executor(full_size: bool):
    """An executor over the full-size random SD1.5 or the built-in tiny model, and that checkpoint's
    name; the benchmarks' outputs go under CACHE_DIR."""
    from engine.config import EngineConfig, build_executor
    from nodes.models.builtin import BUILTIN_CHECKPOINT, ensure_builtin_checkpoint

    if full_size:
        ensure_full_size_checkpoint()
        models_dir, checkpoint = MODELS_DIR, CHECKPOINT_NAME
    else:
        # Generated before the first run: a file appearing during it would count as a changed input.
        ensure_builtin_checkpoint(TINY_MODELS_DIR / "checkpoints")
        models_dir, checkpoint = TINY_MODELS_DIR, BUILTIN_CHECKPOINT
    executor = build_executor(EngineConfig(models_dir=models_dir, output_dir=CACHE_DIR / "output",
                                           input_dir=CACHE_DIR / "input", temp_dir=CACHE_DIR / "temp",
                                           extension_dirs=[]))
    return executor, checkpoint


def diffusers_config_folder() -> Path:
    """The shipped SD1.5 configs as a complete local diffusers folder (tokenizer vocabulary
    included), for `from_single_file(config=...)`: diffusers never has to reach a hub."""
    from nodes.models.shipped_configs import CONFIGS_DIR

    folder = CACHE_DIR / "sd15-diffusers-config"
    if (folder / "tokenizer" / "vocab.json").is_file():
        return folder
    shutil.copytree(CONFIGS_DIR / "sd15", folder, dirs_exist_ok=True)
    vocabulary = CONFIGS_DIR.parent / "tokenizer"
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(vocabulary / name, folder / "tokenizer" / name)
    return folder


if __name__ == "__main__":
    print(ensure_full_size_checkpoint())
