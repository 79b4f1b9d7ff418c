"""T2I-Adapter files → diffusers' `T2IAdapter`, told apart by their keys as ComfyUI does.

Three kinds, each in the original layout (TencentARC's `t2iadapter_*` files: `conv_in`, `body.N.…`)
or diffusers' (`adapter.body.I.resnets.J.…`): the full SD1.x adapter (pixel unshuffle by 8, 4 levels
of 2 blocks), the full SDXL one (conv_in taking 16×16 unshuffled pixels: 256 or 768 channels) and the
light one (`body.I.in_conv`, `body.I.body.J`). The adapter turns the hint into one feature map per
UNet level, added inside the UNet's down blocks (diffusers' `down_intrablock_additional_residuals`).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

FULL_KEY = "conv_in.weight"
LIGHT_KEY = "body.0.in_conv.weight"
DIFFUSERS_PREFIX = "adapter."
XL_UNSHUFFLE, SD_UNSHUFFLE = 16, 8
FULL_BLOCKS_PER_LEVEL = 2  # ComfyUI assumes 2 residual blocks per level for full adapters


class AdapterFileError(ValueError):
    """A T2I-Adapter file in a variant that diffusers' T2IAdapter cannot hold."""


def is_t2i_adapter(keys: Any) -> bool:
    keys = set(keys)
    return bool({FULL_KEY, LIGHT_KEY, DIFFUSERS_PREFIX + FULL_KEY, DIFFUSERS_PREFIX + LIGHT_KEY} & keys)


def is_adapter(net: Any) -> bool:
    """Whether a loaded control model is a T2I-Adapter (features from the hint alone) or a ControlNet."""
    return "adapter_type" in net.config


def _count(keys: Any, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _full_to_diffusers(state: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """`body.K.(in_conv|block1|block2)` (K = level × 2 + block) → `body.L.in_conv` / `body.L.resnets.B.…`."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if "down_opt.op." in key:
            raise AdapterFileError(f"{name}: a T2I-Adapter that downsamples by convolution (down_opt.op) is "
                                   "not supported; only average-pooling adapters are")
        m = re.match(r"body\.(\d+)\.(in_conv|block1|block2)\.(.+)", key)
        if m is None:
            out[key] = value
            continue
        level, block = divmod(int(m.group(1)), FULL_BLOCKS_PER_LEVEL)
        part = "in_conv" if m.group(2) == "in_conv" else f"resnets.{block}.{m.group(2)}"
        out[f"body.{level}.{part}.{m.group(3)}"] = value
    return out


def _light_to_diffusers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`body.I.body.J.…` → `body.I.resnets.J.…`; in_conv and out_conv keep their names."""
    return {re.sub(r"^body\.(\d+)\.body\.", r"body.\1.resnets.", k): v for k, v in state.items()}


def adapter_weights_and_config(state: Mapping[str, torch.Tensor],
                               name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The adapter's tensors in diffusers' layout (without the `adapter.` prefix) and its T2IAdapter config."""
    diffusers_layout = any(k.startswith(DIFFUSERS_PREFIX) for k in state)
    if diffusers_layout:
        inner = {k.removeprefix(DIFFUSERS_PREFIX): v for k, v in state.items()}
    elif LIGHT_KEY in state:
        inner = _light_to_diffusers(state)
    else:
        inner = _full_to_diffusers(state, name)
    shapes = {k: tuple(v.shape) for k, v in inner.items()}
    levels = _count(shapes, r"body\.(\d+)\.")
    blocks = _count(shapes, r"body\.0\.resnets\.(\d+)\.")
    if "body.0.out_conv.weight" in shapes:  # light: the last level repeats the one before it
        unshuffle = SD_UNSHUFFLE
        in_channels = shapes["body.0.in_conv.weight"][1] // unshuffle ** 2
        channels = [shapes[f"body.{i}.out_conv.weight"][0] for i in range(levels - 1)]
        kind = "light_adapter"
    else:
        kernel = shapes["body.0.resnets.0.block2.weight"][2]
        if kernel != 1:
            raise AdapterFileError(f"{name}: a T2I-Adapter with {kernel}×{kernel} second convolutions is not "
                                   "supported; only 1×1 ones are")
        pixels = shapes[FULL_KEY][1]
        xl = pixels in (256, 768)  # ComfyUI's test: 16×16 unshuffled grey or RGB pixels
        unshuffle = XL_UNSHUFFLE if xl else SD_UNSHUFFLE
        in_channels = pixels // unshuffle ** 2
        channels = [shapes[f"body.{i}.resnets.0.block1.weight"][0] for i in range(levels)]
        kind = "full_adapter_xl" if xl else "full_adapter"
    config = dict(in_channels=int(in_channels), channels=[int(c) for c in channels], num_res_blocks=blocks,
                  downscale_factor=unshuffle, adapter_type=kind)
    return {DIFFUSERS_PREFIX + k: v for k, v in inner.items()}, config


def feature_channels(net: Any) -> list[int]:
    """The channels of the feature maps the adapter gives, one per UNet level it feeds."""
    config = net.config
    channels = list(config.channels)
    if config.adapter_type == "light_adapter":
        return channels + channels[-1:]
    return channels


def adapter_fits(net: Any, unet_config: Mapping[str, Any]) -> bool:
    """Whether the adapter's features match the UNet's down-block widths, level by level (SDXL adapters
    also feed the mid block, of the last width)."""
    widths = list(unet_config["block_out_channels"])
    features = feature_channels(net)
    if net.config.adapter_type == "full_adapter_xl":
        widths = widths + widths[-1:]
    return features[:len(widths)] == widths


def adapter_features(net: Any, hint: torch.Tensor) -> list[torch.Tensor]:
    """The adapter's features for a hint [B, C, H, W] in 0..1 (grey adapters take the channels' mean, as
    ComfyUI does)."""
    if net.config.in_channels == 1 and hint.shape[1] > 1:
        hint = hint.mean(dim=1, keepdim=True)
    param = next(net.parameters())
    return list(net(hint.to(param.device, param.dtype)))


def hint_size(net: Any, height: int, width: int) -> tuple[int, int]:
    """The pixel size the hint is resized to: the latent's, rounded up to whole unshuffle cells (ComfyUI)."""
    cell = net.config.downscale_factor
    return -(-height // cell) * cell, -(-width // cell) * cell
