"""Loader nodes: checkpoints (single files, with an LDM config, diffusers folders), VAEs and the CLIP layer choice.

Models are loaded once and reused across runs through the executor's cache: a loader's cache
key includes its file's size and modification time and the run's device/precision settings.
"""

from __future__ import annotations

from pathlib import Path

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import ModelFiles, Paths
from engine.types import CLIP, MODEL, VAE, Choice, Int, Link
from nodes.models.builtin import BUILTIN_CHECKPOINTS, ensure_builtin_checkpoint
from nodes.models.checkpoint import LoadedCheckpoint, load_checkpoint
from nodes.models.handles import ClipHandle, ModelHandle, VaeHandle
from nodes.models.quantize import Int8Weights
from nodes.models.runtime import runtime_from_settings
from nodes.models.taesd import TAESD_SCALES, VaeChoices, load_taesd_vae, taesd_fingerprint
from nodes.sampling import ModelSampling


def file_stamp(path: Path) -> str:
    """Size and modification time: cheap, and changes whenever the file is replaced or edited."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def checkpoint_path(paths: Paths, name: str) -> Path:
    """The checkpoint file for `name` (or its alias); a built-in model is generated on first use."""
    name = paths.resolve_model_name("checkpoints", name)
    try:
        return paths.model_path("checkpoints", name)
    except FileNotFoundError:
        if name not in BUILTIN_CHECKPOINTS:
            raise
        return ensure_builtin_checkpoint(paths.model_dirs("checkpoints")[0], name)


def checkpoint_handles(loaded: LoadedCheckpoint, name: str, int8: bool = False) -> tuple:
    """MODEL, CLIP and VAE of a loaded checkpoint, as the checkpoint loaders output them (`int8`: the
    MODEL samples with int8 layers, `precision=int8`)."""
    if loaded.vae is None:
        raise ValueError(f"checkpoint {name!r} has no VAE weights: add a VAELoader")
    model = ModelHandle(loaded.unet, loaded.family, ModelSampling(loaded.prediction_type), name,
                        latent_scale=loaded.vae_scaling_factor, int8=Int8Weights() if int8 else None)
    clip = ClipHandle(tuple(loaded.text_encoders), tuple(loaded.tokenizers), loaded.family, source=name)
    vae = VaeHandle(loaded.vae, loaded.vae_scaling_factor, name)
    return (model, clip, vae)


def folder_stamp(folder: Path) -> str:
    """Every file's name, size and modification time: a diffusers folder changes file by file."""
    return "|".join(f"{p.relative_to(folder).as_posix()}:{file_stamp(p)}" for p in sorted(folder.rglob("*"))
                    if p.is_file())


@node("CheckpointLoaderSimple", display_name="Load Checkpoint", category="loaders",
      outputs=[Out(MODEL, "MODEL"), Out(CLIP, "CLIP"), Out(VAE, "VAE")], uses_settings=["precision", "device"])
class CheckpointLoaderSimple:
    """Loads a Stable Diffusion checkpoint (SD1.x, SD2.x, SDXL; single file or diffusers folder)."""

    ckpt_name = Choice(ModelFiles("checkpoints", builtin=list(BUILTIN_CHECKPOINTS)),
                       tooltip="The checkpoint to load, from models/checkpoints.")

    def fingerprint(self, paths: Paths, ckpt_name: str) -> str:
        resolved = paths.resolve_model_name("checkpoints", ckpt_name)
        if resolved in BUILTIN_CHECKPOINTS:
            # Built-ins are deterministic: generating the file on first use must not change the key.
            return f"builtin:{resolved}"
        try:
            return file_stamp(paths.model_path("checkpoints", ckpt_name))
        except FileNotFoundError:
            return "missing"

    def run(self, ctx: RunContext, ckpt_name: str) -> tuple:
        runtime = runtime_from_settings(ctx.settings)
        loaded = load_checkpoint(checkpoint_path(ctx.paths, ckpt_name), dtype=runtime.dtype, device=runtime.device,
                                 memory_format=runtime.memory_format, unet_memory_format=runtime.unet_memory_format)
        return checkpoint_handles(loaded, ckpt_name, runtime.int8)


@node("CheckpointLoader", display_name="Load Checkpoint With Config (DEPRECATED)", category="advanced/loaders",
      outputs=[Out(MODEL, "MODEL"), Out(CLIP, "CLIP"), Out(VAE, "VAE")], uses_settings=["precision", "device"],
      deprecated=True)
class CheckpointLoader:
    """Loads a checkpoint with an original LDM config from models/configs, which decides the prediction
    type (`parameterization: v`) and latent scale factor; the architecture comes from the weights."""

    config_name = Choice(ModelFiles("configs", extensions=(".yaml",)))
    ckpt_name = Choice(ModelFiles("checkpoints", builtin=list(BUILTIN_CHECKPOINTS)))

    def fingerprint(self, paths: Paths, config_name: str, ckpt_name: str) -> str:
        try:
            config = file_stamp(paths.model_path("configs", config_name))
        except FileNotFoundError:
            config = "missing"
        return f"{config}/{CheckpointLoaderSimple().fingerprint(paths, ckpt_name)}"

    def run(self, ctx: RunContext, config_name: str, ckpt_name: str) -> tuple:
        from nodes.models.family import SD2_EPS, SD2_V
        from nodes.models.ldm_yaml import read_ldm_config

        config = read_ldm_config(ctx.paths.model_path("configs", config_name))
        runtime = runtime_from_settings(ctx.settings)
        loaded = load_checkpoint(checkpoint_path(ctx.paths, ckpt_name), dtype=runtime.dtype, device=runtime.device,
                                 memory_format=runtime.memory_format, unet_memory_format=runtime.unet_memory_format)
        loaded.scheduler_config["prediction_type"] = config.prediction_type
        if loaded.family.config_dir == "sd2":
            loaded.family = SD2_V if config.prediction_type == "v_prediction" else SD2_EPS
        if config.scale_factor is not None:
            loaded.configs.vae["scaling_factor"] = config.scale_factor
        return checkpoint_handles(loaded, ckpt_name, runtime.int8)


@node("DiffusersLoader", category="advanced/loaders/deprecated",
      outputs=[Out(MODEL, "MODEL"), Out(CLIP, "CLIP"), Out(VAE, "VAE")], uses_settings=["precision", "device"])
class DiffusersLoader:
    """Loads a diffusers pipeline folder (one holding model_index.json) from models/diffusers."""

    model_path = Choice(ModelFiles("diffusers", extensions=("folder",)))  # ComfyUI's "folder": only bundles

    def fingerprint(self, paths: Paths, model_path: str) -> str:
        try:
            return folder_stamp(paths.model_path("diffusers", model_path))
        except FileNotFoundError:
            return "missing"

    def run(self, ctx: RunContext, model_path: str) -> tuple:
        folder = ctx.paths.model_path("diffusers", model_path)
        if not (folder / "model_index.json").is_file():
            raise ValueError(f"{model_path!r} in models/diffusers is not a diffusers folder (no model_index.json)")
        runtime = runtime_from_settings(ctx.settings)
        loaded = load_checkpoint(folder, dtype=runtime.dtype, device=runtime.device,
                                 memory_format=runtime.memory_format, unet_memory_format=runtime.unet_memory_format)
        return checkpoint_handles(loaded, model_path, runtime.int8)


@node("VAELoader", display_name="Load VAE", category="loaders", outputs=[Out(VAE, "VAE")],
      uses_settings=["precision", "device"])
class VAELoader:
    """Loads a standalone VAE (a `vae` folder file in LDM or diffusers key layout), or TAESD (`taesd`,
    `taesdxl`: both halves from `vae_approx`, as ComfyUI offers them)."""

    vae_name = Choice(VaeChoices())

    def fingerprint(self, paths: Paths, vae_name: str) -> str:
        if vae_name in TAESD_SCALES:
            return taesd_fingerprint(paths, vae_name)
        return file_stamp(paths.model_path("vae", vae_name))

    def run(self, ctx: RunContext, vae_name: str) -> tuple:
        from nodes.models.standalone_vae import load_vae

        runtime = runtime_from_settings(ctx.settings)
        if vae_name in TAESD_SCALES:
            taesd = load_taesd_vae(ctx.paths, vae_name, runtime.dtype, runtime.device, runtime.memory_format)
            return (VaeHandle(taesd, taesd.scaling_factor, vae_name),)
        vae, scaling = load_vae(ctx.paths.model_path("vae", vae_name), runtime.dtype, runtime.device,
                                runtime.memory_format)
        return (VaeHandle(vae, scaling, vae_name),)


@node("CLIPSetLastLayer", display_name="CLIP Set Last Layer", category="conditioning", outputs=[Out(CLIP, "CLIP")])
class CLIPSetLastLayer:
    """Chooses which CLIP layer's output conditions the model (-1 last, -2 penultimate, ...)."""

    clip = Link(CLIP)
    stop_at_clip_layer = Int(-1, min=-24, max=-1, step=1)

    def run(self, ctx: RunContext, clip: ClipHandle, stop_at_clip_layer: int) -> tuple:
        from dataclasses import replace

        return (replace(clip, layer_idx=stop_at_clip_layer),)
