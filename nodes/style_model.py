"""Style models (T2I-Adapter's style adapter, models/style_models): image tokens from a CLIP vision
encoding, appended to the prompt's tokens so the UNet's cross-attention reads both.

The adapter is small (three CLIP-style transformer blocks over the encoder's hidden states plus
learned query tokens); it is built here from the file's shapes, as ComfyUI's StyleAdapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from engine.context import RunContext
from engine.declare import Out, node
from engine.paths import ModelFiles
from engine.types import CONDITIONING, Choice, Float, Link
from nodes.clip_vision import CLIP_VISION_OUTPUT
from nodes.conditioning.value import Conditioning
from nodes.models.clip_vision_loading import ClipVisionOutput
from nodes.models.modules import assign_weights
from nodes.models.runtime import runtime_from_settings
from nodes.models.state_dict_files import load_state_dict

STYLE_MODEL = "STYLE_MODEL"
STYLE_ADAPTER_HEADS = 8  # fixed in the released adapter (ComfyUI builds it with 8); shapes cannot show it


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """OpenAI CLIP's transformer block (pre-LayerNorm attention and MLP); keys `attn`, `ln_1`, `mlp.c_fc`, …"""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, width * 4))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(width * 4, width))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [L, N, D]
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class StyleAdapter(nn.Module):
    """Learned style tokens appended to the CLIP vision hidden states, refined by a few transformer
    blocks, then projected to the text encoder's width: `num_token` conditioning tokens per image."""

    def __init__(self, width: int, context_dim: int, heads: int, layers: int, num_token: int) -> None:
        super().__init__()
        self.transformer_layes = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.num_token = num_token
        self.style_embedding = nn.Parameter(torch.zeros(1, num_token, width))
        self.ln_post = nn.LayerNorm(width)
        self.ln_pre = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, context_dim))

    @property
    def estimated_nbytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        style = self.style_embedding.expand(hidden.shape[0], -1, -1)
        x = self.ln_pre(torch.cat([hidden, style], dim=1))
        x = self.transformer_layes(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, -self.num_token:, :]) @ self.proj


def build_style_adapter(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None,
                        device: str | torch.device = "cpu", name: str = "style model") -> StyleAdapter:
    if "style_embedding" not in state_dict:
        kind = "a Flux Redux model" if "redux_down.weight" in state_dict else "not a style model"
        raise ValueError(f"{name}: {kind} (a T2I-Adapter style model has `style_embedding`); "
                         "only SD1.x style adapters are supported")
    _, num_token, width = state_dict["style_embedding"].shape
    layers = len({k.split(".")[1] for k in state_dict if k.startswith("transformer_layes.")})
    with torch.device("meta"):
        adapter = StyleAdapter(width, int(state_dict["proj"].shape[1]), STYLE_ADAPTER_HEADS, layers, num_token)
    return assign_weights(adapter, state_dict, dtype=dtype, device=device, component=name)


def load_style_model(path: Path, dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                     name: str = "") -> StyleAdapter:
    return build_style_adapter(load_state_dict(path), dtype, device, name or path.name)


def style_tokens(adapter: StyleAdapter, output: ClipVisionOutput) -> torch.Tensor:
    """The adapter's tokens for every image of the encoding, as one sequence [1, B * num_token, C]."""
    param = next(adapter.parameters())
    with torch.inference_mode():
        tokens = adapter(output.last_hidden_state.to(param.device, param.dtype))
    return tokens.float().cpu().flatten(0, 1).unsqueeze(0)


@node("StyleModelLoader", display_name="Load Style Model", category="loaders",
      outputs=[Out(STYLE_MODEL, "STYLE_MODEL")], uses_settings=["precision", "device"])
class StyleModelLoader:
    """Loads a T2I-Adapter style model from models/style_models."""

    style_model_name = Choice(ModelFiles("style_models"))

    def run(self, ctx: RunContext, style_model_name: str) -> tuple:
        runtime = runtime_from_settings(ctx.settings)
        return (load_style_model(ctx.paths.model_path("style_models", style_model_name), runtime.dtype,
                                 runtime.device, style_model_name),)


@node("StyleModelApply", display_name="Apply Style Model", category="conditioning/style_model",
      outputs=[Out(CONDITIONING, "CONDITIONING")])
class StyleModelApply:
    """Appends the style model's image tokens to every prompt entry. `multiply` scales the tokens by
    the strength; `attn_bias` keeps them as they are (ComfyUI turns it into an attention mask that
    only joint-attention models such as Flux read, so UNet models see the plain tokens)."""

    conditioning = Link(CONDITIONING)
    style_model = Link(STYLE_MODEL)
    clip_vision_output = Link(CLIP_VISION_OUTPUT)
    strength = Float(1.0, min=0.0, max=10.0, step=0.001)
    strength_type = Choice(["multiply", "attn_bias"])

    def run(self, ctx: RunContext, conditioning: Conditioning, style_model: StyleAdapter,
            clip_vision_output: ClipVisionOutput, strength: float, strength_type: str) -> tuple:
        tokens = style_tokens(style_model, clip_vision_output)
        if strength_type == "multiply":
            tokens = tokens * strength
        out = []
        for entry in conditioning:
            extra = tokens.to(entry.embeds.dtype).expand(entry.embeds.shape[0], -1, -1)
            out.append(entry.with_(embeds=torch.cat([entry.embeds, extra], dim=1)))
        return (tuple(out),)
