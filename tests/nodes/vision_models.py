"""Tiny random image-side models in the real file layouts: a CLIP vision file (transformers keys, as
ComfyUI's clip_vision files are), a T2I-Adapter style model, and an SD2.1-unCLIP single-file
checkpoint (the SD2 pipeline + `label_emb` image input + OpenCLIP visual tower under
`embedder.model.visual.` + `noise_augmentor.data_mean/std`)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from nodes.models.family import SD2_EPS
from nodes.models.ldm_export import export_ldm_checkpoint
from nodes.models.modules import assign_weights, build_unet
from nodes.models.tiny import tiny_configs, tiny_modules

VISION_WIDTH = 64
VISION_PROJECTION = 32
VISION_IMAGE = 32
STYLE_TOKENS = 4
UNCLIP_NAME = "tiny-sd21-unclip.safetensors"


def _seeded(module: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, value in sorted(module.state_dict().items()):
            if value.is_floating_point():
                value.copy_(torch.randn(value.shape, generator=generator) * scale)
    return module.eval()


def tiny_vision_model(seed: int = 0):
    """A 2-layer CLIPVisionModelWithProjection of width 64 (one head) on 32 px images."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=VISION_WIDTH, intermediate_size=2 * VISION_WIDTH, num_hidden_layers=2,
                              num_attention_heads=1, image_size=VISION_IMAGE, patch_size=8,
                              projection_dim=VISION_PROJECTION, hidden_act="quick_gelu")
    model = _seeded(CLIPVisionModelWithProjection(config), seed)
    with torch.no_grad():  # LayerNorms near 1, as trained ones are, so the outputs are not all alike
        for name, value in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                value.add_(1.0)
    return model


def transformers_to_open_clip(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The inverse of `clip_vision_loading.open_clip_visual_to_transformers` (q/k/v fused again)."""
    fixed = {"embeddings.patch_embedding.weight": "conv1.weight", "embeddings.class_embedding": "class_embedding",
             "embeddings.position_embedding.weight": "positional_embedding", "pre_layrnorm.weight": "ln_pre.weight",
             "pre_layrnorm.bias": "ln_pre.bias", "post_layernorm.weight": "ln_post.weight",
             "post_layernorm.bias": "ln_post.bias"}
    layer = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}
    out = {prefix + "proj": state_dict["visual_projection.weight"].t().contiguous()}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        rest = key.removeprefix("vision_model.")
        if rest in fixed:
            out[prefix + fixed[rest]] = value
        elif rest.startswith("encoder.layers."):
            index, name = rest.split(".", 3)[2:]
            base = f"{prefix}transformer.resblocks.{index}."
            module, kind = name.rsplit(".", 1)
            if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                fused.setdefault(f"{base}attn.in_proj_{kind}", {})[module[-6]] = value
            else:
                out[base + layer[module] + "." + kind] = value
    for key, parts in fused.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def save_clip_vision(folder: Path, name: str = "tiny-clip-vision.safetensors", seed: int = 0):
    """A CLIP vision file in transformers' layout; returns (path, model)."""
    model = tiny_vision_model(seed)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / name))
    return folder / name, model


def style_model_state(seed: int = 0, context_dim: int = 32, layers: int = 2) -> dict[str, torch.Tensor]:
    """A T2I-Adapter style model's tensors for the tiny vision model (8 heads of width 8)."""
    from nodes.style_model import StyleAdapter

    adapter = _seeded(StyleAdapter(VISION_WIDTH, context_dim, 8, layers, STYLE_TOKENS), seed, scale=0.2)
    return {k: v.contiguous() for k, v in adapter.state_dict().items()}


def save_tiny_unclip_checkpoint(folder: Path, seed: int = 0, name: str = UNCLIP_NAME):
    """A tiny SD2.1-unCLIP checkpoint; returns (path, modules, vision model, data_mean, data_std)."""
    modules = tiny_modules(SD2_EPS, seed)
    config = dict(tiny_configs(SD2_EPS).unet, class_embed_type="projection",
                  projection_class_embeddings_input_dim=2 * VISION_PROJECTION)
    unet = build_unet(config)
    unet = assign_weights(unet, {k: torch.randn(v.shape, generator=torch.Generator().manual_seed(seed + i)) * 0.05
                                 for i, (k, v) in enumerate(sorted(unet.state_dict().items()))},
                          dtype=torch.float32, device="cpu", component="unet")
    modules["unet"] = unet
    # The exporter names SDXL's `add_embedding` label_emb; the unCLIP image input is the same module.
    unet_state = {k.replace("class_embedding.", "add_embedding."): v for k, v in unet.state_dict().items()}
    state = export_ldm_checkpoint(SD2_EPS, unet_state, unet.config, modules["vae"].state_dict(),
                                  modules["vae"].config, [modules["text_encoder"].state_dict()])
    vision = tiny_vision_model(seed + 1)
    state.update(transformers_to_open_clip(vision.state_dict(), "embedder.model.visual."))
    generator = torch.Generator().manual_seed(seed + 2)
    mean = torch.randn(1, VISION_PROJECTION, generator=generator) * 0.1
    std = torch.rand(1, VISION_PROJECTION, generator=generator) * 0.5 + 0.5
    state["noise_augmentor.data_mean"], state["noise_augmentor.data_std"] = mean, std
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / name))
    return folder / name, modules, vision, mean, std
