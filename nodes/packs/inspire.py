"""ltdrdata/ComfyUI-Inspire-Pack's A1111-style samplers and folder loader (a1111_compat.py, libs/utils.py,
image_util.py).

`KSampler //Inspire` draws its initial noise as the pack's `prepare_noise` does: on the CPU or, in
`GPU(=A1111)` mode, on the GPU's generator (the CPU's where there is no GPU); per batch item with
incremental seeds, or as one batch; blended with a variation seed's noise, linearly (rescaled to unit
variance) or by slerp. Everything else is our KSampler.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from engine.context import RunContext
from engine.declare import Out, Provenance, node
from engine.paths import Paths, UnsafePathError, contained
from engine.types import CONDITIONING, IMAGE, LATENT, MASK, MODEL, Boolean, Choice, Float, Int, Link, String
from nodes.resample import resize
from nodes.sampler_nodes import SEED_MAX, run_sampler
from nodes.sampling import SAMPLER_NAMES, SCHEDULER_NAMES

NOISE_MODES = ["GPU(=A1111)", "CPU"]
BATCH_SEED_MODES = ["incremental", "comfy", "variation str inc:0.01", "variation str inc:0.05"]
VARIATION_METHODS = ["linear", "slerp"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
SCHEDULER_FUNC = "SCHEDULER_FUNC"
# The pack offers these after ComfyUI's schedulers; workflows naming one validate with an error saying so.
EXTRA_SCHEDULERS = ("AYS SDXL", "AYS SD1", "AYS SVD", "GITS[coeff=1.2]", "OSS FLUX", "OSS Wan", "OSS Chroma")
INSPIRE_SCHEDULERS = [*SCHEDULER_NAMES, *EXTRA_SCHEDULERS]


def noise_device(noise_mode: str) -> torch.device:
    """Where the pack draws noise: the CPU, or the GPU for `GPU(=A1111)` (the CPU when there is none)."""
    if noise_mode != "CPU" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _randn(shape: list[int], seed: int, device: torch.device) -> torch.Tensor:
    # A fresh generator seeded with `seed` draws as the pack's `torch.manual_seed(seed)` (CPU) or
    # `torch.cuda.manual_seed(seed)` then `randn(device="cuda")` do, without touching global state.
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed) % 2**64)
    return torch.randn(shape, generator=generator, dtype=torch.float32, device=device)


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical blend per batch item over the flattened item (the pack's `slerp`; NaN norms count as 0)."""
    shape = low.shape
    low, high = low.reshape(shape[0], -1), high.reshape(shape[0], -1)
    low_norm = torch.nan_to_num(low / torch.norm(low, dim=1, keepdim=True), nan=0.0)
    high_norm = torch.nan_to_num(high / torch.norm(high, dim=1, keepdim=True), nan=0.0)
    omega = torch.acos((low_norm * high_norm).sum(1))
    so = torch.sin(omega)
    mixed = (torch.sin((1.0 - strength) * omega) / so).unsqueeze(1) * low \
        + (torch.sin(strength * omega) / so).unsqueeze(1) * high
    return mixed.reshape(shape)


def mix_noise(noise: torch.Tensor, variation: torch.Tensor, strength: float, method: str) -> torch.Tensor:
    """The pack's variation blend: slerp, or linear divided by sqrt((1-s)² + s²) to keep unit variance."""
    variation = variation.to(noise.device)
    if method == "slerp":
        return slerp(strength, noise, variation)
    return ((1 - strength) * noise + strength * variation) / math.sqrt((1 - strength) ** 2 + strength ** 2)


def prepare_noise(shape: torch.Size | tuple[int, ...], seed: int, noise_mode: str = "CPU",
                  batch_seed_mode: str = "comfy", variation_seed: int = 0, variation_strength: float = 0.0,
                  variation_method: str = "linear", batch_index: list[int] | None = None) -> torch.Tensor:
    """The initial noise of `KSampler //Inspire` for a latent of `shape` (float32, on the CPU)."""
    device = noise_device(noise_mode)
    one = [1, *shape[1:]]
    stepped = batch_seed_mode.startswith("variation str inc")
    variation = _randn(one, variation_seed, device) if variation_strength > 0 or stepped else None

    def vary(noise: torch.Tensor, extra: float = 0.0) -> torch.Tensor:
        if variation is None:
            return noise
        return mix_noise(noise, variation.expand(noise.shape[0], -1, -1, -1), variation_strength + extra,
                         variation_method)

    if batch_index is None and batch_seed_mode == "incremental":
        noise = torch.cat([vary(_randn(one, seed + i, device)) for i in range(shape[0])])
    elif batch_index is None and stepped:
        step = float(batch_seed_mode[len("variation str inc:"):])
        noise = torch.cat([vary(_randn(one, seed, device), step * i) for i in range(shape[0])])
    elif batch_index is None:
        noise = vary(_randn(list(shape), seed, device))
    else:   # the pack's comfy-style draw per batch index, without variation (as the pack)
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed) % 2**64)
        draws = [torch.randn(one, generator=generator, dtype=torch.float32, device=device)
                 for _ in range(max(batch_index) + 1)]
        noise = torch.cat([draws[i] for i in batch_index])
    return noise.cpu()


def _internal_seed() -> Int:
    return Int(0, min=0, max=SEED_MAX, optional=True,
               tooltip="The seed of the per-step noise of ancestral and SDE samplers (default: the seed).")


def scheduler_problem(scheduler: str) -> str | None:
    if scheduler in EXTRA_SCHEDULERS:
        return (f"scheduler {scheduler!r}: Inspire's own schedulers (AYS, GITS, OSS) are not available in this "
                f"engine; pick one of ComfyUI's ({', '.join(SCHEDULER_NAMES)})")
    return None


def _refuse_scheduler_func(scheduler_func_opt: Any) -> None:
    if scheduler_func_opt is not None:
        raise ValueError("scheduler_func_opt: Inspire's scheduler functions (GITS, AYS, ...) are not available "
                         "in this engine; disconnect it and pick a scheduler by name")


def _inspire_sample(ctx: RunContext, model: Any, seed: int, internal_seed: int | None, latent: dict,
                    noise_mode: str, batch_seed_mode: str, variation_seed: int, variation_strength: float,
                    variation_method: str | None, add_noise: bool = True, **sampler: Any) -> dict:
    samples = latent["samples"]
    if add_noise:
        noise = prepare_noise(samples.shape, seed, noise_mode, batch_seed_mode, variation_seed,
                              variation_strength, variation_method or "linear", latent.get("batch_index"))
    else:
        noise = torch.zeros(samples.shape, dtype=torch.float32)
    step_seed = seed if internal_seed is None else internal_seed
    return run_sampler(ctx, model, step_seed, latent=latent, add_noise=add_noise, noise=noise, **sampler)


@node("KSampler //Inspire", display_name="KSampler (inspire)", category="InspirePack/a1111_compat",
      outputs=[Out(LATENT, "LATENT")],
      provenance=Provenance("samplers", ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise",
                                         "noise_mode", "batch_seed_mode", "variation_seed", "variation_strength")))
class KSamplerInspire:
    """KSampler with A1111-style noise: GPU or CPU noise, incremental batch seeds and variation seeds."""

    model = Link(MODEL)
    seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)
    steps = Int(20, min=1, max=10_000)
    cfg = Float(8.0, min=0.0, max=100.0)
    sampler_name = Choice(SAMPLER_NAMES)
    scheduler = Choice(INSPIRE_SCHEDULERS)
    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    latent_image = Link(LATENT)
    denoise = Float(1.0, min=0.0, max=1.0, step=0.01)
    noise_mode = Choice(NOISE_MODES)
    batch_seed_mode = Choice(BATCH_SEED_MODES)
    variation_seed = Int(0, min=0, max=SEED_MAX)
    variation_strength = Float(0.0, min=0.0, max=1.0, step=0.01)
    variation_method = Choice(VARIATION_METHODS, optional=True)
    scheduler_func_opt = Link(SCHEDULER_FUNC, optional=True)
    internal_seed = _internal_seed()

    def validate_inputs(self, paths: Paths, scheduler: str = "", **_: Any) -> bool | str:
        return scheduler_problem(scheduler) or True

    def run(self, ctx: RunContext, model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
            latent_image, denoise, noise_mode, batch_seed_mode, variation_seed, variation_strength,
            variation_method=None, scheduler_func_opt=None, internal_seed=None) -> tuple:
        _refuse_scheduler_func(scheduler_func_opt)
        if scheduler_problem(scheduler):
            raise ValueError(scheduler_problem(scheduler))
        return (_inspire_sample(ctx, model, seed, internal_seed, latent_image, noise_mode, batch_seed_mode,
                                variation_seed, variation_strength, variation_method, steps=steps, cfg=cfg,
                                sampler_name=sampler_name, scheduler=scheduler, positive=positive,
                                negative=negative, denoise=denoise),)


@node("KSamplerAdvanced //Inspire", display_name="KSamplerAdvanced (inspire)", category="InspirePack/a1111_compat",
      outputs=[Out(LATENT, "LATENT")],
      provenance=Provenance("samplers", ("noise_seed", "steps", "cfg", "sampler_name", "scheduler", "start_at_step",
                                         "end_at_step", "noise_mode", "variation_seed", "variation_strength")))
class KSamplerAdvancedInspire:
    """KSamplerAdvanced with A1111-style noise (the pack's NOISE_IMAGE input is not available)."""

    model = Link(MODEL)
    add_noise = Boolean(True, label_on="enable", label_off="disable")
    noise_seed = Int(0, min=0, max=SEED_MAX, control_after_generate=True)
    steps = Int(20, min=1, max=10_000)
    cfg = Float(8.0, min=0.0, max=100.0, step=0.5, round=0.01)
    sampler_name = Choice(SAMPLER_NAMES)
    scheduler = Choice(INSPIRE_SCHEDULERS)
    positive = Link(CONDITIONING)
    negative = Link(CONDITIONING)
    latent_image = Link(LATENT)
    start_at_step = Int(0, min=0, max=10_000)
    end_at_step = Int(10_000, min=0, max=10_000)
    noise_mode = Choice(NOISE_MODES)
    return_with_leftover_noise = Boolean(False, label_on="enable", label_off="disable")
    batch_seed_mode = Choice(BATCH_SEED_MODES)
    variation_seed = Int(0, min=0, max=SEED_MAX)
    variation_strength = Float(0.0, min=0.0, max=1.0, step=0.01)
    variation_method = Choice(VARIATION_METHODS, optional=True)
    noise_opt = Link("NOISE_IMAGE", optional=True)
    scheduler_func_opt = Link(SCHEDULER_FUNC, optional=True)
    internal_seed = _internal_seed()

    def validate_inputs(self, paths: Paths, scheduler: str = "", **_: Any) -> bool | str:
        return scheduler_problem(scheduler) or True

    def run(self, ctx: RunContext, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler, positive,
            negative, latent_image, start_at_step, end_at_step, noise_mode, return_with_leftover_noise,
            batch_seed_mode, variation_seed, variation_strength, variation_method=None, noise_opt=None,
            scheduler_func_opt=None, internal_seed=None) -> tuple:
        _refuse_scheduler_func(scheduler_func_opt)
        if scheduler_problem(scheduler):
            raise ValueError(scheduler_problem(scheduler))
        if noise_opt is not None:
            raise ValueError("noise_opt: Inspire's NOISE_IMAGE inputs are not available in this engine")
        return (_inspire_sample(ctx, model, noise_seed, internal_seed, latent_image, noise_mode, batch_seed_mode,
                                variation_seed, variation_strength, variation_method, add_noise=add_noise,
                                steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                                positive=positive, negative=negative, start_step=start_at_step,
                                last_step=end_at_step, force_full_denoise=not return_with_leftover_noise),)


def input_folder(paths: Paths, directory: str) -> Path:
    """The folder `directory` names, which must lie inside the input folder (relative to it, or absolute)."""
    root = paths.input_dir.resolve()
    name = directory.strip()
    if not name:
        raise UnsafePathError("directory is empty: name a folder inside the input folder")
    if Path(name).is_absolute():
        resolved = Path(name).resolve()
        if resolved != root and root not in resolved.parents:
            raise UnsafePathError(f"directory {directory!r} is outside the input folder {paths.input_dir}; "
                                  "this engine loads images only from inside it")
        return resolved
    try:
        return contained(root, name)
    except UnsafePathError as exc:
        raise UnsafePathError(f"directory {directory!r}: {exc}; this engine loads images only from inside "
                              f"the input folder {paths.input_dir}") from None


def _image_files(folder: Path, sort_criteria: str) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
             and folder.resolve() in p.resolve().parents]   # a symlink out of the folder is not followed
    if sort_criteria == "newest_first":
        return sorted(files, key=os.path.getmtime, reverse=True)
    if sort_criteria == "oldest_first":
        return sorted(files, key=os.path.getmtime)
    return sorted(files, key=str)


def _empty() -> tuple:
    return torch.zeros(1, 64, 64, 3), torch.zeros(1, 64, 64), 0


@node("LoadImagesFromDir //Inspire", display_name="Load Image Batch From Dir (Inspire)", category="image",
      outputs=[Out(IMAGE, "IMAGE"), Out(MASK, "MASK"), Out("INT", "INT")])
class LoadImagesFromDirInspire:
    """Loads a folder's images (inside the input folder) as one batch, resized to the first one's size; the
    pack's 64×64 black image and a count of 0 when there is nothing to load."""

    directory = String("")
    image_load_cap = Int(0, min=0, step=1, optional=True)
    start_index = Int(0, min=-1, max=SEED_MAX, step=1, optional=True)
    load_always = Boolean(False, label_on="enabled", label_off="disabled", optional=True)
    sort_criteria = Choice(["filename", "newest_first", "oldest_first"], optional=True)

    def validate_inputs(self, paths: Paths, directory: str, **_: Any) -> bool | str:
        try:
            input_folder(paths, directory)
        except UnsafePathError as exc:
            return str(exc)
        return True

    def fingerprint(self, paths: Paths, directory: str, load_always: bool = False, **_: Any) -> str:
        """The folder's image names and modification times (a new one each time with `load_always`)."""
        if load_always:
            return f"always {time.time_ns()}"
        try:
            files = _image_files(input_folder(paths, directory), "filename")
        except (OSError, UnsafePathError):
            return "missing"
        listing = "\n".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in files)
        return hashlib.sha256(listing.encode()).hexdigest()

    def run(self, ctx: RunContext, directory: str, image_load_cap: int = 0, start_index: int = 0,
            load_always: bool = False, sort_criteria: str = "filename") -> tuple:
        folder = input_folder(ctx.paths, directory)
        if not folder.is_dir():
            return _empty()
        files = _image_files(folder, sort_criteria or "filename")
        files = files[start_index:] if start_index == -1 or start_index < len(files) else []
        if image_load_cap and image_load_cap > 0:
            files = files[:image_load_cap]
        images, masks = [], []
        for path in files:
            try:
                with Image.open(path) as opened:
                    picture = ImageOps.exif_transpose(opened)
                    rgb = torch.from_numpy(np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0)
                    if "A" in picture.getbands():
                        alpha = np.asarray(picture.getchannel("A"), dtype=np.float32) / 255.0
                        mask = 1.0 - torch.from_numpy(alpha)
                    else:
                        mask = torch.zeros(rgb.shape[:2])
            except (OSError, ValueError):
                continue   # the pack skips files it cannot read
            images.append(rgb[None])
            masks.append(mask)
        if not images:
            return _empty()
        height, width = images[0].shape[1:3]
        images = [img if img.shape[1:3] == (height, width) else
                  resize(img.movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1) for img in images]
        masks = [m if m.shape == (height, width) else
                 F.interpolate(m[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
                 for m in masks]
        return torch.cat(images), torch.stack(masks), len(images)
