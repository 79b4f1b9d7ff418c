"""CheckpointSave: a MODEL, CLIP and VAE written as one single-file checkpoint, merges and LoRAs included.

The file is in the original (LDM) key layout through `ldm_export`, the inverse of our loader's
conversion, so we, diffusers' single-file loader and ComfyUI all read it. Each patched weight is
computed by the same function that applies it while sampling (`patching.patched_weight`), so the saved
checkpoint reloads to exactly the weights the graph used. Like ComfyUI it goes to the output folder
(default prefix `checkpoints/ComfyUI`) as `{prefix}_{counter:05}_.safetensors`, never replacing a file.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO, Iterable, Mapping

import torch
from safetensors.torch import save as safetensors_bytes

from engine.context import RunContext
from engine.declare import NodeResult, node
from engine.types import CLIP, MODEL, VAE, Link, String
from nodes.image_save import output_folder, write_numbered
from nodes.models.handles import ClipHandle, ModelHandle, VaeHandle
from nodes.models.ldm_export import export_ldm_checkpoint
from nodes.models.lora_weights import TEXT_ENCODER_PARTS, UNET_PART
from nodes.models.patching import WeightPatch, patched_weight


def patched_state_dict(module: torch.nn.Module, patches: Iterable[WeightPatch], part: str) -> dict[str, torch.Tensor]:
    """The module's state dict with the patches of `part` applied, as `patching.applied` applies them."""
    active = [p for p in patches if p.part == part and p.changes_weights]
    state = dict(module.state_dict())
    for name in dict.fromkeys(name for p in active for name in p.layers):
        state[name] = patched_weight(name, state[name], active)
    return state


def checkpoint_state_dict(model: ModelHandle, clip: ClipHandle, vae: VaeHandle) -> dict[str, torch.Tensor]:
    """The whole pipeline's weights, patches applied, in the single-file layout (contiguous, on the CPU)."""
    unet = model.unet
    encoders: list[Mapping[str, torch.Tensor]] = [patched_state_dict(encoder, clip.patches, part)
                                                  for part, encoder in zip(TEXT_ENCODER_PARTS, clip.text_encoders)]
    unet_config: Any = unet.config  # diffusers' FrozenDicts (mypy sees nn.Module attributes)
    vae_config: Any = vae.vae.config
    state = export_ldm_checkpoint(model.family, patched_state_dict(unet, model.patches, UNET_PART), unet_config,
                                  vae.vae.state_dict(), vae_config, encoders)
    return {key: value.detach().to("cpu").contiguous() for key, value in state.items()}


def checkpoint_metadata(prompt: dict[str, Any] | None, extra_pnginfo: dict[str, Any] | None) -> dict[str, str]:
    """ComfyUI's safetensors metadata: the prompt and each extra_pnginfo entry (the workflow) as JSON."""
    metadata = {"prompt": json.dumps(prompt) if prompt else ""}
    for key, value in (extra_pnginfo or {}).items():
        metadata[key] = json.dumps(value)
    return metadata


@node("CheckpointSave", display_name="Save Checkpoint", category="advanced/model_merging", output_node=True,
      hidden=["prompt", "extra_pnginfo"])
class CheckpointSave:
    """Saves the model, text encoders and VAE as one .safetensors checkpoint in the output folder."""

    model = Link(MODEL)
    clip = Link(CLIP)
    vae = Link(VAE)
    filename_prefix = String("checkpoints/ComfyUI")

    def run(self, ctx: RunContext, model: ModelHandle, clip: ClipHandle, vae: VaeHandle,
            filename_prefix: str) -> NodeResult:
        if model.family != clip.family:
            raise ValueError(f"CheckpointSave: the model is {model.family.name} but the CLIP is {clip.family.name}")
        folder, stem, _ = output_folder(ctx.paths.output_dir, filename_prefix)
        data = safetensors_bytes(checkpoint_state_dict(model, clip, vae),
                                 metadata=checkpoint_metadata(ctx.prompt or None, ctx.extra_pnginfo))
        def write(handle: BinaryIO) -> None:
            handle.write(data)

        write_numbered(folder, stem, "safetensors", None, write)
        return NodeResult()
