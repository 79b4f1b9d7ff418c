"""Model objects built from config dicts without allocating weights, then given the loaded tensors.

Modules are constructed on the meta device (no memory, no random init), and the checkpoint's
tensors are assigned as their parameters: a loaded model holds one copy of its weights, the
file's own when dtype and device already match. Key mismatches are errors that list the keys,
because a silently half-loaded model produces plausible-looking noise.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

MAX_LISTED_KEYS = 8


class WeightMismatchError(ValueError):
    """A component's tensors do not fit the architecture built for it."""


def build_unet(config: Mapping[str, Any]):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel.from_config(dict(config))


def build_vae(config: Mapping[str, Any]):
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        return AutoencoderKL.from_config(dict(config))


def build_text_encoder(config: Mapping[str, Any]):
    """`CLIPTextModelWithProjection` when the config's architectures say so (SDXL's second
    encoder, whose pooled projection conditions the UNet), else `CLIPTextModel`."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if "CLIPTextModelWithProjection" in config.get(
        "architectures", []) else CLIPTextModel
    clip_config = CLIPTextConfig.from_dict({k: v for k, v in config.items() if not k.startswith("_")})
    with torch.device("meta"):
        return cls(clip_config)


def _listed(keys: set[str]) -> str:
    shown = sorted(keys)[:MAX_LISTED_KEYS]
    more = len(keys) - len(shown)
    return ", ".join(shown) + (f" … and {more} more" if more > 0 else "")


def _materialize_buffers(module: torch.nn.Module, device: torch.device) -> None:
    """Recreate non-persistent buffers left on the meta device (CLIP's `position_ids`)."""
    for name, buffer in list(module.named_buffers()):
        if not buffer.is_meta:
            continue
        if not name.endswith("position_ids"):
            raise WeightMismatchError(f"buffer {name!r} has no value after loading")
        owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
        value = torch.arange(buffer.shape[-1], device=device).expand(tuple(buffer.shape))
        owner.register_buffer(name.rsplit(".", 1)[-1], value, persistent=False)


def assign_weights(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                   dtype: torch.dtype | None, device: str | torch.device, component: str,
                   memory_format: torch.memory_format = torch.contiguous_format,
                   release: Callable[[torch.Tensor], None] | None = None):
    """Give `module` (built on meta) the tensors of `state_dict`, cast and moved; returns it in eval mode.

    Convolution kernels (4-D) get `memory_format`, in the same copy as the cast when there is one.
    `release(source)` is called as soon as a tensor has been copied, so a mapped file's pages go
    back tensor by tensor instead of staying resident beside the whole converted model.
    Non-persistent buffers found in the file (old checkpoints carry CLIP's `position_ids`) are
    dropped; any other extra or missing key raises WeightMismatchError naming the component.
    """
    device = torch.device(device)
    expected = module.state_dict(keep_vars=True)
    buffers = {name for name, _ in module.named_buffers()}
    given = {k: v for k, v in state_dict.items() if not (k in buffers and k not in expected)}
    missing, unexpected = set(expected) - set(given), set(given) - set(expected)
    if missing or unexpected:
        raise WeightMismatchError(
            f"{component}: the weights do not fit the architecture; "
            + (f"missing: {_listed(missing)}; " if missing else "")
            + (f"unexpected: {_listed(unexpected)}" if unexpected else ""))
    wrong_shape = {k for k, v in given.items() if tuple(v.shape) != tuple(expected[k].shape)}
    if wrong_shape:
        k = sorted(wrong_shape)[0]
        raise WeightMismatchError(
            f"{component}: {len(wrong_shape)} tensors have unexpected shapes, e.g. {k}: "
            f"{tuple(given[k].shape)} in the file, {tuple(expected[k].shape)} expected")
    cast = {}
    for key, value in given.items():
        target = dtype if (dtype is not None and value.is_floating_point()) else value.dtype
        layout = memory_format if value.ndim == 4 else torch.preserve_format
        cast[key] = value.to(device=device, dtype=target, memory_format=layout)
        if release is not None and cast[key].data_ptr() != value.data_ptr():
            release(value)
    module.load_state_dict(cast, strict=True, assign=True)
    _materialize_buffers(module, device)
    return module.eval().requires_grad_(False)
