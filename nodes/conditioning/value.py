"""The value on a CONDITIONING socket: one or more prompt encodings, each with where and how
strongly it applies. Immutable: nodes that change conditioning return new entries."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from nodes.conditioning.size_ids import SizeConditioning


@dataclass(frozen=True, eq=False)
class AppliedControl:
    """A ControlNet applied to an entry: its hint image [B, C, H, W] in 0..1, strength, and the part of
    the schedule it acts on (ComfyUI's start/end percent). Compared by identity: positive and negative
    entries given the same one share one ControlNet pass per step."""

    net: Any
    source: str
    hint: torch.Tensor
    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0


@dataclass(frozen=True)
class CondEntry:
    """One encoded prompt. `area` is (height, width, y, x) in latent pixels, None for the whole image.

    `control` lists the ControlNets applied to it, in order; `control_to_uncond` (ComfyUI's
    ControlNetApply) also applies them to negative entries that have none of their own."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    area: tuple[int, int, int, int] | None = None
    strength: float = 1.0
    control: tuple[AppliedControl, ...] = ()
    control_to_uncond: bool = False
    # Inpainting (9-channel) UNets: InpaintModelConditioning's masked-image latent (VAE space) and mask,
    # and the UNet's extra input channels made from them when sampling starts (nodes.conditioning.inpaint).
    concat_latent_image: torch.Tensor | None = None
    concat_mask: torch.Tensor | None = None
    concat: torch.Tensor | None = None
    # Where and when it applies beyond `area` (nodes.conditioning.regions reads these while sampling):
    # an area in fractions of the image (h, w, y, x), a mask [B, H, W] scaled by `mask_strength` (and
    # optionally an area cut to its bounds), and the part of the schedule (ComfyUI's start/end percent).
    area_fraction: tuple[float, float, float, float] | None = None
    mask: torch.Tensor | None = None
    mask_strength: float = 1.0
    set_area_to_bounds: bool = False
    start_percent: float = 0.0
    end_percent: float = 1.0
    # unCLIP image embeddings (nodes.unclip.UnclipImage, in order) and, once sampling starts, the
    # unCLIP model's input made from them (its "class labels"); see nodes.unclip.
    unclip: tuple = ()
    adm: torch.Tensor | None = None
    gligen: Any = None  # GLIGENTextBoxApply's boxes and model (nodes.models.gligen_loading.Grounding)
    size: SizeConditioning | None = None  # SDXL's size/crop/aesthetic numbers; None: from the latent

    def with_(self, **changes) -> "CondEntry":
        return replace(self, **changes)

    @property
    def nbytes(self) -> int:
        # ControlNet modules are counted by their loader's cache entry; the hints are this entry's own.
        return (self.embeds.nbytes + (self.pooled.nbytes if self.pooled is not None else 0)
                + sum(c.hint.nbytes for c in self.control) + (self.mask.nbytes if self.mask is not None else 0)
                + sum(image.image_embeds.nbytes for image in self.unclip))


Conditioning = tuple[CondEntry, ...]


def with_uncond_control(positive: Conditioning, negative: Conditioning) -> Conditioning:
    """ComfyUI's ControlNetApply also controls the negative side: when no negative entry has control of
    its own, whole-image negative entries take that of the first positive entry applied so."""
    if any(e.control for e in negative):
        return negative
    shared = next((e.control for e in positive if e.control_to_uncond and e.control and e.area is None), None)
    if shared is None:
        return negative
    return tuple(e.with_(control=shared) if e.area is None else e for e in negative)
