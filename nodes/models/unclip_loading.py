"""unCLIP models (SD2.1-unCLIP): an SD2.x pipeline whose UNet also takes a noised CLIP image
embedding (diffusers' `class_embed_type="projection"`, the LDM `label_emb`), with the image
encoder and the embedding statistics stored in the same checkpoint.

The noise augmentation is ComfyUI's `CLIPEmbeddingNoiseAugmentation` (and diffusers'
`StableUnCLIPImg2ImgPipeline.noise_image_embeddings`): normalise with the file's mean and std,
noise to a level of a squared-cosine schedule, un-normalise, append the level's sinusoidal embedding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from nodes.models.checkpoint import LoadedCheckpoint, _assemble
from nodes.models.clip_vision_loading import OPEN_CLIP_VISUAL_PREFIX, ClipVisionModel, build_clip_vision
from nodes.models.family import UNET_PREFIX, UnknownCheckpointError, detect_family
from nodes.models.handles import ModelHandle
from nodes.models.ldm_convert import configs_for_checkpoint, convert_checkpoint, normalize_legacy_keys
from nodes.models.state_dict_files import open_state_dict

NOISE_LEVELS = 1000
MERGE_NOISE_AUGMENTATION = 0.05  # ComfyUI's `unclip_noise_augment_merge`: several images are re-noised this much
SEED_OFFSET = -10  # ComfyUI noises the embeddings with the sampler's seed minus 10
NOISE_PREFIX = "noise_augmentor."
EMBEDDER_PREFIX = "embedder."


def squared_cosine_alphas_cumprod(steps: int = NOISE_LEVELS, max_beta: float = 0.999) -> torch.Tensor:
    """ᾱ_t of the `squaredcos_cap_v2` schedule, in float64."""
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = torch.tensor([min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), max_beta) for i in range(steps)],
                         dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def level_embedding(level: int, dim: int) -> torch.Tensor:
    """The sinusoidal embedding [1, dim] of a noise level: cosines, then sines (max period 10000)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = torch.tensor([float(level)])[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ImageEmbeddingNoise:
    """Noise augmentation of image embeddings [N, D] → the UNet's input [N, 2D]."""

    def __init__(self, data_mean: torch.Tensor, data_std: torch.Tensor) -> None:
        self.mean = data_mean.float().reshape(1, -1)
        self.std = data_std.float().reshape(1, -1)
        cumprod = squared_cosine_alphas_cumprod()
        self.sqrt_alphas_cumprod = cumprod.sqrt().float()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - cumprod).sqrt().float()

    @property
    def dim(self) -> int:
        return self.mean.shape[1]

    def level(self, noise_augmentation: float) -> int:
        return round((NOISE_LEVELS - 1) * noise_augmentation)

    def __call__(self, embeds: torch.Tensor, level: int, noise: torch.Tensor) -> torch.Tensor:
        scaled = (embeds.float() - self.mean) * (1.0 / self.std)
        noised = self.sqrt_alphas_cumprod[level] * scaled + self.sqrt_one_minus_alphas_cumprod[level] * noise
        return torch.cat([noised * self.std + self.mean, level_embedding(level, self.dim).expand(len(embeds), -1)], 1)


@dataclass(frozen=True)
class UnclipImage:
    """One unCLIPConditioning: the images' projected CLIP embeddings [B, D], strength and noise level."""

    image_embeds: torch.Tensor
    strength: float
    noise_augmentation: float


def unclip_input(images: Sequence[UnclipImage], noise: ImageEmbeddingNoise, seed: int) -> torch.Tensor:
    """The UNet's image input [1, 2D] for an entry, as ComfyUI's `unclip_adm`: each image noised (with
    the same seeded noise) and scaled by its strength; several are summed and noised once more.

    Zeros when the entry has no image (the negative side). The second noising draws from `seed` too,
    where ComfyUI draws unseeded noise."""
    def noised(embeds: torch.Tensor, level: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return noise(embeds, level, torch.randn(embeds.shape, generator=generator))

    parts = [noised(embeds.unsqueeze(0), noise.level(image.noise_augmentation)) * image.strength
             for image in images for embeds in image.image_embeds]
    if not parts:
        return torch.zeros(1, 2 * noise.dim)
    if len(parts) == 1:
        return parts[0]
    merged = torch.stack(parts).sum(0)
    return noised(merged[:, :noise.dim], noise.level(MERGE_NOISE_AUGMENTATION))


@dataclass(frozen=True)
class UnclipModelHandle(ModelHandle):
    """A MODEL whose UNet also reads an image embedding; `image_noise` prepares it."""

    image_noise: ImageEmbeddingNoise | None = None


def with_image_inputs(model: ModelHandle, entries: tuple, seed: int) -> tuple:
    """Entries given their unCLIP input (`adm`) when the model is an unCLIP model; as they are otherwise
    (ComfyUI ignores unCLIP conditioning on other models)."""
    noise = getattr(model, "image_noise", None)
    if noise is None:
        return entries
    return tuple(e.with_(adm=unclip_input(e.unclip, noise, seed + SEED_OFFSET)) for e in entries)


@dataclass
class LoadedUnclip:
    checkpoint: LoadedCheckpoint
    clip_vision: ClipVisionModel
    image_noise: ImageEmbeddingNoise


def load_unclip_checkpoint(path: Path, dtype: torch.dtype | None, device: str | torch.device,
                           memory_format: torch.memory_format = torch.contiguous_format) -> LoadedUnclip:
    """An SD2.1-unCLIP single-file checkpoint: the pipeline, its image encoder and its noise statistics."""
    source = open_state_dict(path)
    state_dict = normalize_legacy_keys(source.tensors)
    missing = [k for k in (NOISE_PREFIX + "data_mean", NOISE_PREFIX + "data_std") if k not in state_dict]
    if missing or not any(k.startswith(EMBEDDER_PREFIX) for k in state_dict):
        raise UnknownCheckpointError(f"{path}: not an unCLIP checkpoint (it lacks "
                                     f"{', '.join(missing) or 'the image encoder under embedder.'})")
    vision = build_clip_vision(state_dict, OPEN_CLIP_VISUAL_PREFIX, dtype=dtype, device=device,
                               source=f"{path.name}: clip_vision")
    noise = ImageEmbeddingNoise(state_dict[NOISE_PREFIX + "data_mean"], state_dict[NOISE_PREFIX + "data_std"])
    pipeline = {k: v for k, v in state_dict.items() if not k.startswith((EMBEDDER_PREFIX, NOISE_PREFIX))}
    label = UNET_PREFIX + "label_emb."
    # Family detection reads a label embedding as SDXL's; the unCLIP one is the image input.
    shapes: dict[str, Any] = {k: tuple(v.shape) for k, v in pipeline.items() if not k.startswith(label)}
    family = detect_family(shapes, filename=path.name, read_tensor=pipeline.__getitem__)
    configs = configs_for_checkpoint(pipeline, family)
    configs.unet["class_embed_type"] = "projection"
    components = convert_checkpoint(pipeline, family, configs)
    del state_dict, pipeline
    loaded = _assemble(path, family, configs, components, dtype, device, memory_format, [source])
    return LoadedUnclip(loaded, vision, noise)
