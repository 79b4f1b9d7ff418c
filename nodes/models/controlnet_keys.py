"""A ControlNet's tensor keys: the original (LDM) layout renamed to diffusers', and what diffusers-layout
shapes say about the hint embedding. Shared by the ControlNet loader and Control-LoRA's rebuild on a UNet."""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

DIFFUSERS_HINT_KEY = "controlnet_cond_embedding.conv_in.weight"
LABEL_EMB_TO_ADD_EMBEDDING = (("label_emb.0.0.", "add_embedding.linear_1."),
                              ("label_emb.0.2.", "add_embedding.linear_2."))


def index_count(keys: Any, pattern: str) -> int:
    """One more than the largest index `pattern`'s group matches among `keys` (0 when none matches)."""
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def ldm_layers_per_block(state_dict: Mapping[str, Any]) -> int:
    inputs = index_count(state_dict, r"input_blocks\.(\d+)\.")
    downsamplers = sum(f"input_blocks.{i}.0.op.weight" in state_dict for i in range(inputs))
    return (inputs - 1 - downsamplers) // (downsamplers + 1)


def hint_embedding_channels(shapes: Mapping[str, tuple[int, ...]]) -> list[int]:
    """The widths of the hint embedding's convolutions, from the weights in diffusers' layout."""
    return [int(shapes[DIFFUSERS_HINT_KEY][0])] + [
        int(shapes[f"controlnet_cond_embedding.blocks.{2 * i + 1}.weight"][0])
        for i in range(index_count(shapes, r"controlnet_cond_embedding\.blocks\.(\d+)\.") // 2)]


def ldm_controlnet_to_diffusers(control: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Unprefixed original keys → diffusers' keys; SDXL's `label_emb` (which diffusers' converter drops)
    becomes `add_embedding`."""
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    converted = convert_controlnet_checkpoint(dict(control), {"layers_per_block": ldm_layers_per_block(control)})
    for ldm, diffusers in LABEL_EMB_TO_ADD_EMBEDDING:
        for part in ("weight", "bias"):
            if ldm + part in control:
                converted[diffusers + part] = control[ldm + part]
    return {k: v for k, v in converted.items() if v is not None}
