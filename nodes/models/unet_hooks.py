"""Changes to what a UNet computes, made with forward hooks attached only while it samples.

ComfyUI's model patches (FreeU, HyperTile, ToMe, PAG) are functions its own UNet calls at fixed
points: on the hidden state and skip connection entering each output block, and around each
self-attention. Our UNet is diffusers', so the same points are reached with PyTorch hooks on its
submodules. A MODEL handle carries `UnetHook`s; `hooks_attached` registers them for one sampling
run and removes them afterwards, even on failure. Nothing in the module is written to, so the
model is exactly as before once they are gone.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol

import torch
from diffusers.models.attention import BasicTransformerBlock
from torch.utils.hooks import RemovableHandle


@dataclass
class HookRun:
    """What the hooks of one sampling run share: the shape of the latent batch the UNet was last
    called with (ComfyUI's `original_shape`), set before any hook inside the UNet runs."""

    input_shape: tuple[int, ...] = ()


class UnetHook(Protocol):
    """One model patch: registers its hooks on `unet` and returns their handles."""

    def attach(self, unet: torch.nn.Module, run: HookRun) -> list[RemovableHandle]: ...


@contextmanager
def hooks_attached(unet: torch.nn.Module, hooks: Iterable[UnetHook]) -> Iterator[torch.nn.Module]:
    """`unet` with the hooks registered for the duration of the block, in the order given."""
    hooks = list(hooks)
    if not hooks:
        yield unet
        return
    run = HookRun()

    def record_shape(_module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        run.input_shape = tuple(sample.shape)

    handles = [unet.register_forward_pre_hook(record_shape, with_kwargs=True)]
    try:
        for hook in hooks:
            handles.extend(hook.attach(unet, run))
        yield unet
    finally:
        for handle in reversed(handles):
            handle.remove()


def model_channels(unet: Any) -> int:
    """The width of the first level (ComfyUI's `model_channels`: 320 for SD1.x/2.x/SDXL)."""
    return int(unet.config.block_out_channels[0])


def self_attentions(unet: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """(block name, self-attention module) of every transformer block, in the UNet's registration order
    (diffusers registers `up_blocks` before `mid_block`, so this is not forward order; callers select by name)."""
    return [(name, module.attn1) for name, module in unet.named_modules() if isinstance(module, BasicTransformerBlock)]


def with_hidden_states(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    """A module call's arguments with its first one (the hidden states) replaced."""
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def hidden_states_of(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def attention_hooks(attentions: Iterable[torch.nn.Module],
                    before: Callable[[torch.Tensor], torch.Tensor | None],
                    after: Callable[[torch.Tensor], torch.Tensor]) -> list[RemovableHandle]:
    """Hooks that give each self-attention `before(hidden_states)` (None: unchanged) and hand its
    output through `after`: ComfyUI's attn1 patch and attn1 output patch."""

    def pre(_module, args, kwargs):
        changed = before(hidden_states_of(args, kwargs))
        return None if changed is None else with_hidden_states(args, kwargs, changed)

    def post(_module, _args, output):
        return after(output)

    handles = []
    for attention in attentions:
        handles.append(attention.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(attention.register_forward_hook(post))
    return handles


def output_block_resnets(unet: Any) -> list[tuple[torch.nn.Module, int]]:
    """(resnet, channels of the hidden state h) for each resnet of the up blocks. Its input is
    cat([h, skip]): ComfyUI's output blocks, whose `output_block_patch` sees h and skip apart."""
    widths = list(reversed(unet.config.block_out_channels))
    found: list[tuple[torch.nn.Module, int]] = []
    for level, block in enumerate(unet.up_blocks):
        previous = widths[max(level - 1, 0)]
        for index, resnet in enumerate(block.resnets):
            found.append((resnet, previous if index == 0 else widths[level]))
    return found


def split_input_hook(h_channels: int, patch: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
                     ) -> Callable[..., Any]:
    """A resnet pre-hook that splits its input into h and skip, patches them, and joins them again."""

    def pre(_module, args, kwargs):
        joined = hidden_states_of(args, kwargs) if args or "hidden_states" in kwargs else kwargs["input_tensor"]
        h, skip = patch(joined[:, :h_channels], joined[:, h_channels:])
        joined = torch.cat([h, skip], dim=1)
        if args:
            return (joined, *args[1:]), kwargs
        key = "hidden_states" if "hidden_states" in kwargs else "input_tensor"
        return args, {**kwargs, key: joined}

    return pre
