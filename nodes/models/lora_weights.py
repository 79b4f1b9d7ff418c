"""LoRA files → low-rank weight changes keyed by our modules' parameter names.

A kohya/A1111 LoRA names each layer after the module it changes, with dots turned into
underscores: `lora_unet_<module>` (the UNet, in diffusers names for SD1.x files and in the
original LDM names for SDXL ones), `lora_te_<module>` (the text encoder; SDXL: `lora_te1_` for
CLIP-L, `lora_te2_` for OpenCLIP-bigG, both in transformers names). Each layer holds
`lora_down.weight`, `lora_up.weight`, optionally `alpha` (and `lora_mid.weight` for LyCORIS'
Tucker-decomposed convolutions). diffusers/PEFT files (`unet.<module>.lora_A.weight`,
`lora_B`) are read too, and LyCORIS' LoHa, LoKr, GLoRA and full-diff layers (`lora_formats`), each but
a full diff optionally with a DoRA `dora_scale` (`lora_dora`).

Underscored names cannot be split back into module paths reliably (`transformer_blocks`,
`to_q`, `proj_in` all hold underscores), so the lookup goes the other way: every name each of
our modules could have in a LoRA file is generated from the module itself, the LDM names through
`ldm_export` (the inverse of the single-file loader's conversion, diffusers' own table). Nothing
is matched by pattern, so a layer either maps onto exactly one parameter or is reported.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import torch

from nodes.models.family import UNET_PREFIX, CheckpointFamily
from nodes.models.ldm_export import unet_to_ldm
from nodes.models.lora_dora import DORA_SCALE, DoraLayer
from nodes.models.lora_formats import BIAS_LAYER_SUFFIX, FORMAT_FACTORS, DiffLayer, FormatLayer, format_layers
from nodes.models.lora_glora import GLORA_SUFFIXES

log = logging.getLogger(__name__)

UNET_PART = "unet"
TEXT_ENCODER_PARTS = ("text_encoder", "text_encoder_2")  # ClipHandle.text_encoders[i] ↔ part i
# (kohya prefix, diffusers/PEFT prefix) of each text encoder, by family config.
TEXT_ENCODER_PREFIXES = {
    "sd15": (("lora_te_", "text_encoder."),),
    "sd2": (("lora_te_", "text_encoder."),),
    "sdxl": (("lora_te1_", "text_encoder."), ("lora_te2_", "text_encoder_2.")),
}
_ANY_TEXT_ENCODER_PREFIX = ("lora_te_", "lora_te1_", "lora_te2_", "text_encoder.", "text_encoder_2.")
# Tensor name endings of a LoRA layer, and the factor each one is.
_FACTOR_SUFFIXES = {
    ".lora_down.weight": "down", ".lora_up.weight": "up", ".lora_mid.weight": "mid", ".alpha": "alpha",
    ".lora_A.weight": "down", ".lora_B.weight": "up",
}
_FAMILY_LABELS = {"sd15": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL"}
_CONTEXT_WIDTH_FAMILY = {768: "SD1.x", 1024: "SD2.x", 2048: "SDXL"}  # full-size cross-attention widths
_EXAMPLES = 5


class LoraMismatchError(ValueError):
    """A LoRA file that does not fit the model it is applied to (another family, or not a LoRA)."""


@dataclass(frozen=True, eq=False)
class LoraLayer:
    """One layer's low-rank change: `delta = alpha / rank × up @ down` (alpha absent: scale 1).

    `down` is [rank, in] or, for a convolution, [rank, in, kh, kw]; `up` is [out, rank(, 1, 1)].
    With `mid` ([rank, rank, kh, kw], LyCORIS' Tucker form) `down` and `up` are 1×1 and the
    kernel comes from `mid`.
    """

    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None = None
    mid: torch.Tensor | None = None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        return 1.0 if self.alpha is None else self.alpha / self.rank

    @property
    def out_features(self) -> int:
        return int(self.up.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (self.down, self.up, self.mid) if t is not None)

    @property
    def numel(self) -> int:
        """How many weights the delta has (what must equal the target's size)."""
        kernel = math.prod(self.mid.shape[2:]) if self.mid is not None else 1
        return int(self.up.shape[0]) * math.prod(self.down.shape[1:]) * kernel

    def fits(self, shape: Sequence[int]) -> bool:
        # A linear-layer LoRA also fits the 1×1 convolution the same layer is in another
        # implementation (SD1.x's proj_in/proj_out), hence sizes, not shapes, are compared.
        return bool(shape) and shape[0] == self.up.shape[0] and math.prod(shape) == self.numel

    def delta(self, shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        """The scaled change to a weight of `shape`, in float32 on `device`."""
        up = self.up.to(device=device, dtype=torch.float32).flatten(1)
        down = self.down.to(device=device, dtype=torch.float32).flatten(1)
        if self.mid is None:
            product = up @ down
        else:
            mid = self.mid.to(device=device, dtype=torch.float32)
            product = torch.einsum("ijkl,jr,pi->prkl", mid, down, up)
        return (product * self.scale).reshape(tuple(shape))


# What a patch adds to one parameter: `.delta(shape, device)`, or `.patched(weight, strength)` for the
# changes that read the weight (GLoRA, DoRA).
AnyLayer = LoraLayer | FormatLayer | DoraLayer


@dataclass(frozen=True, eq=False)
class MatchedLora:
    """A LoRA file's layers sorted onto a model's parts: part → {parameter name → layer}."""

    source: str
    parts: Mapping[str, Mapping[str, AnyLayer]]
    not_loaded: tuple[str, ...] = field(default=())


def read_layers(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, AnyLayer], list[str]]:
    """Group a LoRA state dict into layers by name (LoRA/LoCon, LoHa, LoKr, GLoRA, full diffs, with DoRA
    scales); also returns the keys that are no factor we apply (norm diffs, layers missing a factor)."""
    factors: dict[str, dict[str, torch.Tensor]] = {}
    lycoris: dict[str, dict[str, torch.Tensor]] = {}  # LoHa, LoKr, GLoRA, full-diff factors (lora_formats)
    dora_scales: dict[str, torch.Tensor] = {}
    other: list[str] = []
    for key, tensor in state.items():
        suffix = next((s for s in _FACTOR_SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            glora = next((s for s in GLORA_SUFFIXES if key.endswith(s)), None)
            name, _, factor = key.rpartition(".")
            if glora is not None:
                lycoris.setdefault(key[:-len(glora)], {})[GLORA_SUFFIXES[glora]] = tensor
            elif factor == DORA_SCALE:
                dora_scales[name] = tensor
            elif factor in FORMAT_FACTORS:
                lycoris.setdefault(name, {})[factor] = tensor
            else:
                other.append(key)
            continue
        factors.setdefault(key[:-len(suffix)], {})[_FACTOR_SUFFIXES[suffix]] = tensor
    for name, parts in lycoris.items():
        if set(factors.get(name, {})) == {"alpha"}:  # a LoHa/LoKr layer's alpha
            parts["alpha"] = factors.pop(name)["alpha"]
    layers: dict[str, AnyLayer] = {}
    formats, incomplete = format_layers(lycoris)
    layers.update(formats)
    other += incomplete
    for name, parts in factors.items():
        if "down" not in parts or "up" not in parts:
            other += [f"{name}{s}" for s, f in _FACTOR_SUFFIXES.items() if f in parts]
            continue
        alpha = parts.get("alpha")
        layers[name] = LoraLayer(parts["down"], parts["up"], None if alpha is None else float(alpha), parts.get("mid"))
    for name, scale in dora_scales.items():
        layer = layers.get(name)
        if layer is None or isinstance(layer, (DiffLayer, DoraLayer)):  # ComfyUI: a full diff ignores it
            other.append(f"{name}.{DORA_SCALE}")
        else:
            layers[name] = DoraLayer(layer, scale)
    return layers, sorted(other)


def _weight_names(module: torch.nn.Module) -> list[str]:
    """The parameters a LoRA can change: matrices and convolution kernels."""
    return [name for name, p in module.named_parameters() if name.endswith(".weight") and p.ndim >= 2]


def kohya_unet_names(unet: torch.nn.Module) -> dict[str, tuple[str, str]]:
    """UNet parameter → its two kohya layer names: from its diffusers name, from its LDM name."""
    weights = _weight_names(unet)
    # unet_to_ldm maps keys whatever their values: here each parameter's name stands for its tensor
    ldm: dict[str, Any] = unet_to_ldm({w: w for w in weights},  # type: ignore[misc]
                                      int(unet.config.layers_per_block))  # type: ignore[union-attr, arg-type]
    ldm_module = {weight: key[len(UNET_PREFIX):-len(".weight")] for key, weight in ldm.items()}
    return {w: ("lora_unet_" + w[:-len(".weight")].replace(".", "_"), "lora_unet_" + ldm_module[w].replace(".", "_"))
            for w in weights}


def unet_layer_names(unet: torch.nn.Module) -> dict[str, str]:
    """Every name a LoRA file may give a UNet layer → the parameter it changes."""
    names: dict[str, str] = {}
    for weight, kohya_names in kohya_unet_names(unet).items():
        names.update(dict.fromkeys(kohya_names, weight))
        names["unet." + weight[:-len(".weight")]] = weight
    return names


def text_encoder_layer_names(encoder: torch.nn.Module, kohya_prefix: str, peft_prefix: str) -> dict[str, str]:
    """Every name a LoRA file may give a text-encoder layer → the parameter it changes.

    LoRA files name CLIP's layers `text_model.encoder.layers…` as transformers 4 did; transformers
    5's CLIPTextModel has no `text_model` level any more (its WithProjection variant still has).
    """
    names: dict[str, str] = {}
    for weight in _weight_names(encoder):
        module = weight[:-len(".weight")]
        if not module.startswith(("text_model.", "text_projection")):
            module = "text_model." + module
        names[kohya_prefix + module.replace(".", "_")] = weight
        names[peft_prefix + module] = weight
    return names


def lora_family_hint(layers: Mapping[str, AnyLayer]) -> str | None:
    """The family a LoRA looks made for, when its names or shapes tell (for error messages)."""
    if any(name.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) for name in layers):
        return "SDXL"
    for name, layer in layers.items():
        width = layer.numel // layer.out_features
        if name.replace(".", "_").endswith("attn2_to_k") and width in _CONTEXT_WIDTH_FAMILY:
            return _CONTEXT_WIDTH_FAMILY[width]
    if any(name.startswith("lora_te_") for name in layers):
        return "SD1.x or SD2.x"  # SDXL files name their two text encoders lora_te1_, lora_te2_
    return None


def _examples(items: Iterable[str]) -> str:
    items = list(items)
    more = f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else ""
    return ", ".join(items[:_EXAMPLES]) + more


def _family_advice(layers: Mapping[str, AnyLayer], family: CheckpointFamily) -> str:
    label = _FAMILY_LABELS.get(family.config_dir, family.name)
    hint = lora_family_hint(layers)
    if hint and hint != label:
        return f"; it looks made for {hint} models, and this model is {label}"
    return f"; is it a LoRA for {label} models?"


def match_lora(state: Mapping[str, torch.Tensor], source: str, family: CheckpointFamily, unet: torch.nn.Module,
               text_encoders: Sequence[torch.nn.Module] | None = None) -> MatchedLora:
    """Sort a LoRA state dict's layers onto the UNet and (unless None) the text encoders.

    Raises LoraMismatchError when no layer maps onto the model or any mapped layer has another
    size than its target (a LoRA for another family); layers that map nowhere otherwise only
    warn, as in ComfyUI ("lora key not loaded"). Without text encoders (a model-only loader),
    text-encoder layers are skipped silently.
    """
    layers, other = read_layers(state)
    targets: dict[str, tuple[str, str]] = {name: (UNET_PART, w) for name, w in unet_layer_names(unet).items()}
    modules: dict[str, torch.nn.Module] = {UNET_PART: unet}
    if text_encoders is not None:
        prefixes = TEXT_ENCODER_PREFIXES.get(family.config_dir, ())
        for part, encoder, (kohya, peft) in zip(TEXT_ENCODER_PARTS, text_encoders, prefixes):
            modules[part] = encoder
            targets.update({n: (part, w) for n, w in text_encoder_layer_names(encoder, kohya, peft).items()})
    shapes = {part: {n: tuple(p.shape) for n, p in m.named_parameters()} for part, m in modules.items()}

    parts: dict[str, dict[str, AnyLayer]] = {}
    unmatched: list[str] = []
    misfits: list[str] = []
    for name, layer in layers.items():
        target = targets.get(name.removesuffix(BIAS_LAYER_SUFFIX))
        if target is None:
            if text_encoders is not None or not name.startswith(_ANY_TEXT_ENCODER_PREFIX):
                unmatched.append(name)
            continue
        part, weight = target
        if name.endswith(BIAS_LAYER_SUFFIX):
            weight = weight[:-len("weight")] + "bias"
            if weight not in shapes[part]:
                unmatched.append(name)
                continue
        shape = shapes[part][weight]
        if not layer.fits(shape):
            misfits.append(f"{name} (LoRA {layer.out_features}×{layer.numel // layer.out_features}, "
                           f"model {'×'.join(map(str, shape))})")
            continue
        parts.setdefault(part, {})[weight] = layer

    if misfits:
        raise LoraMismatchError(
            f"LoRA {source!r} does not fit this model: {len(misfits)} of its {len(layers)} layers have other "
            f"sizes than the model's, e.g. {_examples(misfits)}{_family_advice(layers, family)}")
    if not layers:
        detail = f"e.g. {_examples(other)}" if other else "the file holds no tensors"
        raise LoraMismatchError(
            f"LoRA {source!r} has no layers of a kind we apply (kohya/A1111 or diffusers LoRA, LoCon, "
            f"LyCORIS LoHa/LoKr/GLoRA and full diffs, DoRA): {detail}")
    if not parts and unmatched:
        raise LoraMismatchError(
            f"LoRA {source!r}: none of its {len(layers)} layers match this model "
            f"(e.g. {_examples(unmatched)}){_family_advice(layers, family)}")
    not_loaded = tuple(unmatched + other)
    if not_loaded:
        log.warning("LoRA %r: %d key(s) not loaded (no such layer in this model, or a kind of LoRA "
                    "that is not supported): %s", source, len(not_loaded), _examples(not_loaded))
    return MatchedLora(source, parts, not_loaded)
