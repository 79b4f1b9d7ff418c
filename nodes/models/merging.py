"""Model merges as weight patches: one model's weights blended with another's while it is used.

ComfyUI merges by patching (comfy_extras/nodes_model_merging.py): for each weight of model 2,
`W1 · strength_model + W2 · strength_patch`, computed in float32 when the model is used. Here a merge
is a `WeightPatch` whose layers hand out model 2's weights (with model 2's own patches, such as a
LoRA, already applied), so merges stack with LoRAs and with each other, and nothing is copied until
the merged model runs or is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, cast

import torch

from nodes.models.ldm_export import unet_to_ldm
from nodes.models.patching import WeightPatch, patched_weight


@dataclass(frozen=True, eq=False)
class OtherWeight:
    """A merge patch's layer: the other model's weight, with that model's own patches applied."""

    weight: torch.Tensor
    patches: tuple = ()
    name: str = ""

    nbytes = 0  # shares the other model's tensor: a merged handle costs no memory of its own

    def delta(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        return patched_weight(self.name, self.weight, self.patches, torch.float32).to(device)


def merge_patch(part: str, module: torch.nn.Module, other: torch.nn.Module, other_patches: tuple,
                ratio_of: Callable[[str], float], source: str = "",
                skip: Callable[[str], bool] = lambda _: False) -> list[WeightPatch]:
    """Patches giving each parameter of `module` the value W · r + W_other · (1 - r), r = ratio_of(name).

    Parameters whose shapes differ, or that `skip` names, are left as they are (ComfyUI skips them too);
    parameters sharing a ratio share one patch.
    """
    own = dict(module.named_parameters())
    theirs = [p for p in other_patches if p.part == part]
    by_ratio: dict[float, dict[str, OtherWeight]] = {}
    for name, weight in other.named_parameters():
        if name in own and own[name].shape == weight.shape and not skip(name):
            by_ratio.setdefault(ratio_of(name), {})[name] = OtherWeight(weight.detach(), tuple(theirs), name)
    patches = [WeightPatch(part, 1.0 - ratio, layers, source, strength_model=ratio)
               for ratio, layers in by_ratio.items()]
    return [p for p in patches if p.changes_weights]  # a ratio of 1 keeps the weights: no patch at all


def weighted_patch(part: str, module: torch.nn.Module, other: torch.nn.Module, other_patches: tuple,
                   strength_patch: float, strength_model: float, source: str = "") -> WeightPatch:
    """One patch W · strength_model + W_other · strength_patch over every parameter the two share."""
    own = dict(module.named_parameters())
    theirs = tuple(p for p in other_patches if p.part == part)
    layers = {name: OtherWeight(weight.detach(), theirs, name) for name, weight in other.named_parameters()
              if name in own and own[name].shape == weight.shape}
    return WeightPatch(part, strength_patch, layers, source, strength_model=strength_model)


def ldm_unet_names(unet: torch.nn.Module) -> dict[str, str]:
    """diffusers parameter name → its name in the original layout without `model.diffusion_model.`
    (`input_blocks.1.0.in_layers.0.weight`...): ModelMergeBlocks' ratios go by those prefixes."""
    names = {name: name for name, _ in unet.named_parameters()}
    config: Any = unet.config  # diffusers' FrozenDict (mypy sees an nn.Module attribute)
    ldm = unet_to_ldm(cast(Mapping[str, torch.Tensor], names), config["layers_per_block"])
    return {cast(str, diffusers_name): key.split("diffusion_model.", 1)[1] for key, diffusers_name in ldm.items()}


def block_ratio(ldm_name: str, ratios: Mapping[str, float]) -> float:
    """ModelMergeBlocks' choice: the ratio of the longest prefix among `ratios` that the original-layout
    name starts with (`out` also takes `output_blocks.*`), else the first ratio given."""
    matching = [prefix for prefix in ratios if ldm_name.startswith(prefix)]
    return ratios[max(matching, key=len)] if matching else next(iter(ratios.values()))
