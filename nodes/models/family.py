"""Which Stable Diffusion family a checkpoint belongs to, decided from its tensor names and shapes.

The text encoders' key layout is the most telling signal (OpenAI CLIP under `cond_stage_model.
transformer.` for SD1.x, OpenCLIP under `cond_stage_model.model.` for SD2.x, both under
`conditioner.embedders.` for SDXL); the UNet's cross-attention width confirms it, and decides
alone for a file that carries only a UNet. Shapes are only compared with each other, never with
full-size values, so small test checkpoints are recognised like real ones.

SD2.x comes as a 512 px epsilon model and a 768 px v-prediction model with identical shapes.
What decides, in order: a `v_pred` key (what ComfyUI's checkpoint saver writes for v models); a
hint in the file name (`v-pred`, `vpred`, `768-v`, `768v` → v; `base`, `512` → epsilon); ComfyUI's own
statistic when the caller can read one tensor (the last output block's first LayerNorm bias has a
standard deviation above 0.09 in v models), so that users get the same choice as in ComfyUI;
and otherwise v-prediction, because the 768-v models are the SD2.x checkpoints most people have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

UNET_PREFIX = "model.diffusion_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_OPEN_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_PREFIX = "conditioner.embedders.0.model."
VAE_PREFIX = "first_stage_model."
V_PRED_KEY = "v_pred"
# The tensor ComfyUI looks at to tell SD2 v-prediction from epsilon models, and its threshold.
V_PRED_STAT_KEY = UNET_PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
V_PRED_STD_THRESHOLD = 0.09

Shape = Sequence[int]


@dataclass(frozen=True)
class CheckpointFamily:
    """A family of checkpoints that share an architecture, configs and conditioning recipe.

    `config_dir` names the folder under `nodes/models/configs/`; `text_encoder_prefixes` are the
    LDM prefixes of its text encoders in the order the pipeline uses them.
    """

    name: str
    config_dir: str
    prediction_type: str
    text_encoder_prefixes: tuple[str, ...]
    size_ids: int = 0  # SDXL's size/crop (and refiner: aesthetic score) numbers beside the pooled prompt

    @property
    def is_sdxl(self) -> bool:
        """SDXL base or refiner: a pooled prompt and size ids condition the UNet; SDXL's latent space."""
        return self.size_ids > 0


SD15 = CheckpointFamily("sd15", "sd15", "epsilon", (SD1_CLIP_PREFIX,))
SD2_EPS = CheckpointFamily("sd2", "sd2", "epsilon", (SD2_OPEN_CLIP_PREFIX,))
SD2_V = CheckpointFamily("sd2_v", "sd2", "v_prediction", (SD2_OPEN_CLIP_PREFIX,))
SDXL_BASE = CheckpointFamily("sdxl_base", "sdxl", "epsilon", (SDXL_CLIP_L_PREFIX, SDXL_OPEN_CLIP_PREFIX), size_ids=6)
# The refiner: OpenCLIP bigG alone, and an aesthetic score in place of the target size (5 ids).
SDXL_REFINER = CheckpointFamily("sdxl_refiner", "sdxl_refiner", "epsilon", (SDXL_REFINER_PREFIX,), size_ids=5)
FAMILIES = {f.name: f for f in (SD15, SD2_EPS, SD2_V, SDXL_BASE, SDXL_REFINER)}

# Full-size UNet cross-attention widths, for files that carry no text encoder.
_CONTEXT_DIM_FAMILY = {768: "sd15", 1024: "sd2", 2048: "sdxl"}
_V_NAME_HINT = re.compile(r"v[-_ ]?pred|768[-_ ]?v\b|768v", re.IGNORECASE)
_EPS_NAME_HINT = re.compile(r"base|(?<!\d)512(?!\d)", re.IGNORECASE)


class UnknownCheckpointError(ValueError):
    """The tensors do not look like any supported Stable Diffusion checkpoint."""


def _has_prefix(keys: Mapping[str, Shape], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def _unet_context_dim(shapes: Mapping[str, Shape]) -> int | None:
    for key, shape in shapes.items():
        if key.startswith(UNET_PREFIX) and key.endswith("attn2.to_k.weight"):
            return int(shape[-1])
    return None


def _text_layout(shapes: Mapping[str, Shape]) -> str | None:
    if _has_prefix(shapes, SDXL_OPEN_CLIP_PREFIX) and _has_prefix(shapes, SDXL_CLIP_L_PREFIX):
        return "sdxl"
    if _has_prefix(shapes, SDXL_REFINER_PREFIX):
        return "sdxl_refiner"
    if _has_prefix(shapes, SD2_OPEN_CLIP_PREFIX):
        return "sd2"
    if _has_prefix(shapes, SD1_CLIP_PREFIX):
        return "sd15"
    return None


def _summary(shapes: Mapping[str, Shape]) -> str:
    """What was seen, for error messages: tensor count and the top-level key prefixes."""
    prefixes: dict[str, int] = {}
    for key in shapes:
        head = ".".join(key.split(".")[:2])
        prefixes[head] = prefixes.get(head, 0) + 1
    listed = ", ".join(f"{p} ({n})" for p, n in sorted(prefixes.items(), key=lambda kv: -kv[1])[:8])
    context = _unet_context_dim(shapes)
    return (f"{len(shapes)} tensors; key prefixes: {listed or 'none'}; "
            f"UNet cross-attention width: {context if context is not None else 'none'}")


def _text_hidden_size(shapes: Mapping[str, Shape], prefix: str) -> int | None:
    for key in (prefix + "text_model.embeddings.token_embedding.weight", prefix + "token_embedding.weight"):
        if key in shapes:
            return int(shapes[key][-1])
    return None


def _check_context_dim(shapes: Mapping[str, Shape], family: CheckpointFamily) -> None:
    """The UNet must attend to what the family's text encoders produce (their widths summed)."""
    context = _unet_context_dim(shapes)
    found = [_text_hidden_size(shapes, p) for p in family.text_encoder_prefixes]
    widths = [w for w in found if w is not None]
    if context is None or len(widths) != len(found):
        return
    if context != sum(widths):
        raise UnknownCheckpointError(
            f"looks like {family.name} by its text encoders (widths {widths}), but the UNet attends to "
            f"width {context}; {_summary(shapes)}")


def sd2_prediction_type(shapes: Mapping[str, Shape], filename: str | None = None,
                        read_tensor: Callable[[str], Any] | None = None) -> str:
    """`v_prediction` or `epsilon` for an SD2.x checkpoint (see the module docstring for the order)."""
    if V_PRED_KEY in shapes:
        return "v_prediction"
    if filename:
        stem = re.split(r"[\\/]", filename)[-1]
        if _V_NAME_HINT.search(stem):
            return "v_prediction"
        if _EPS_NAME_HINT.search(stem):
            return "epsilon"
    if read_tensor is not None and V_PRED_STAT_KEY in shapes:
        bias = read_tensor(V_PRED_STAT_KEY)
        return "v_prediction" if float(bias.float().std(unbiased=False)) > V_PRED_STD_THRESHOLD else "epsilon"
    return "v_prediction"


def detect_family(keys_and_shapes: Mapping[str, Shape], filename: str | None = None,
                  read_tensor: Callable[[str], object] | None = None) -> CheckpointFamily:
    """The family of a single-file (LDM layout) checkpoint, or UnknownCheckpointError saying what was seen.

    `filename` and `read_tensor` only matter for telling SD2.x v-prediction from epsilon models.
    """
    shapes = keys_and_shapes
    if not _has_prefix(shapes, UNET_PREFIX):
        raise UnknownCheckpointError(f"no UNet (`{UNET_PREFIX}*`) found; {_summary(shapes)}")
    layout = _text_layout(shapes)
    if layout is None:
        layout = _CONTEXT_DIM_FAMILY.get(_unet_context_dim(shapes) or -1)
        if layout == "sdxl" and not _has_prefix(shapes, UNET_PREFIX + "label_emb."):
            layout = None
    if layout is None:
        raise UnknownCheckpointError(
            f"not an SD1.x, SD2.x or SDXL (base or refiner) checkpoint (no known text encoder layout and an "
            f"unfamiliar UNet); {_summary(shapes)}")
    if layout == "sd2":
        family = SD2_V if sd2_prediction_type(shapes, filename, read_tensor) == "v_prediction" else SD2_EPS
    else:
        family = FAMILIES["sdxl_base" if layout == "sdxl" else layout]  # sd15, sdxl_refiner
    has_label_emb = _has_prefix(shapes, UNET_PREFIX + "label_emb.")
    if has_label_emb != family.is_sdxl:
        raise UnknownCheckpointError(
            f"looks like {family.name} by its text encoders, but the UNet "
            f"{'has' if has_label_emb else 'lacks'} SDXL's size/crop embedding; {_summary(shapes)}")
    _check_context_dim(shapes, family)
    return family
