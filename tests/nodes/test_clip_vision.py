"""CLIP vision: files in transformers' and OpenCLIP's layouts load into the model they were made from;
encoding follows ComfyUI's preprocessing (centre crop or squash, 8-bit quantisation, CLIP's
statistics); style models turn an encoding into prompt tokens as the T2I-Adapter style adapter does."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from nodes.clip_vision import CLIPVisionEncode, CLIPVisionLoader
from nodes.conditioning.value import CondEntry
from nodes.models.clip_vision_loading import (
    CLIP_MEAN,
    CLIP_STD,
    ClipVisionFileError,
    build_clip_vision,
    preprocess,
    vision_config,
)
from nodes.style_model import StyleModelApply, StyleModelLoader, build_style_adapter
from tests.nodes.vision_models import (
    STYLE_TOKENS,
    VISION_IMAGE,
    VISION_PROJECTION,
    save_clip_vision,
    style_model_state,
    transformers_to_open_clip,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    path, model = save_clip_vision(root / "clip_vision", "vit.safetensors", seed=4)
    (root / "style_models").mkdir()
    style = style_model_state(seed=5)
    save_file(style, str(root / "style_models" / "style.safetensors"))
    ctx = RunContext(node_id="1", prompt_id="test", paths=Paths(root, root / "in", root / "out", root / "tmp"),
                     interrupt=InterruptHandle(), emit=lambda event, data: None, settings={"precision": "fp32"})
    return ctx, model, style


def images(batch=2, height=40, width=56, seed=0) -> torch.Tensor:
    return torch.rand((batch, height, width, 3), generator=torch.Generator().manual_seed(seed))


def test_the_loader_builds_the_model_the_file_was_saved_from_and_encode_equals_it(models):
    ctx, model, _ = models
    (loaded,) = CLIPVisionLoader().run(ctx, "vit.safetensors")
    assert loaded.image_size == VISION_IMAGE
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    (out,) = CLIPVisionEncode().run(ctx, loaded, images(), "center")
    with torch.no_grad():
        ref = model(pixel_values=preprocess(images(), VISION_IMAGE, True), output_hidden_states=True)
    assert out.image_embeds.shape == (2, VISION_PROJECTION)
    assert torch.allclose(out.image_embeds, ref.image_embeds, atol=1e-6)
    assert torch.allclose(out.last_hidden_state, ref.last_hidden_state, atol=1e-6)
    assert torch.allclose(out.penultimate_hidden_states, ref.hidden_states[-2], atol=1e-6)
    assert not torch.allclose(out.penultimate_hidden_states, out.last_hidden_state)


def test_the_open_clip_layout_under_a_prefix_gives_the_same_model(models):
    _, model, _ = models
    converted = build_clip_vision(transformers_to_open_clip(model.state_dict(), "embedder.model.visual."),
                                  "embedder.model.visual.")
    for key, value in model.state_dict().items():
        assert torch.equal(converted.model.state_dict()[key], value), key


def test_the_config_comes_from_the_shapes_and_the_known_releases():
    shapes = {"vision_model.embeddings.patch_embedding.weight": torch.empty(1280, 3, 14, 14),
              "vision_model.embeddings.position_embedding.weight": torch.empty(257, 1280),
              "vision_model.encoder.layers.31.mlp.fc1.weight": torch.empty(5120, 1280),
              "vision_model.encoder.layers.0.mlp.fc1.weight": torch.empty(5120, 1280),
              "visual_projection.weight": torch.empty(1024, 1280)}
    config = vision_config(shapes)
    assert config == dict(hidden_size=1280, patch_size=14, num_channels=3, image_size=224, num_hidden_layers=32,
                          intermediate_size=5120, num_attention_heads=16, hidden_act="gelu", projection_dim=1024)
    with pytest.raises(ClipVisionFileError, match="no CLIP vision tower"):
        build_clip_vision({"model.diffusion_model.x": torch.zeros(1)})


def test_center_crop_takes_the_middle_square_and_none_squashes_the_whole_image():
    wide = torch.zeros(1, 32, 64, 3)
    wide[:, :, :16] = 1.0  # a white left quarter: cropped away by `center`, squashed in by `none`
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    cropped, squashed = preprocess(wide, 32, crop=True), preprocess(wide, 32, crop=False)
    assert torch.allclose(cropped, (0 - mean) / std * torch.ones(1, 3, 32, 32), atol=1e-6)
    expected = F.interpolate(wide.movedim(-1, 1), size=(32, 32), mode="bicubic", antialias=True)
    expected = (torch.clip(255 * expected, 0, 255).round() / 255 - mean) / std
    assert torch.allclose(squashed, expected, atol=1e-6)
    assert squashed[0, 0, 0, 0] > 1.0


def test_pixels_are_quantised_to_8_bits_even_at_the_encoders_size():
    image = torch.full((1, 32, 32, 3), 0.3001)
    expected = (round(0.3001 * 255) / 255 - CLIP_MEAN[0]) / CLIP_STD[0]
    assert torch.allclose(preprocess(image, 32, True)[0, 0], torch.tensor(expected), atol=1e-6)


def reference_style_tokens(state: dict, hidden: torch.Tensor, heads: int = 8) -> torch.Tensor:
    """The style adapter written out: CLIP's pre-LN blocks over [hidden, style tokens], then ln_post and proj."""
    def norm(x, name):
        return F.layer_norm(x, x.shape[-1:], state[name + ".weight"], state[name + ".bias"])

    x = torch.cat([hidden, state["style_embedding"].expand(hidden.shape[0], -1, -1)], dim=1)
    x = norm(x, "ln_pre")
    layers = len({k.split(".")[1] for k in state if k.startswith("transformer_layes.")})
    for i in range(layers):
        p = f"transformer_layes.{i}."
        h = norm(x, p + "ln_1")
        q, k, v = (h @ state[p + "attn.in_proj_weight"].T + state[p + "attn.in_proj_bias"]).chunk(3, dim=-1)
        split = [t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v)]
        weights = torch.softmax(split[0] @ split[1].transpose(-1, -2) / math.sqrt(split[0].shape[-1]), dim=-1)
        merged = (weights @ split[2]).transpose(1, 2).reshape(x.shape)
        x = x + merged @ state[p + "attn.out_proj.weight"].T + state[p + "attn.out_proj.bias"]
        h = norm(x, p + "ln_2") @ state[p + "mlp.c_fc.weight"].T + state[p + "mlp.c_fc.bias"]
        x = x + (h * torch.sigmoid(1.702 * h)) @ state[p + "mlp.c_proj.weight"].T + state[p + "mlp.c_proj.bias"]
    return norm(x[:, -STYLE_TOKENS:], "ln_post") @ state["proj"]


def test_style_model_apply_appends_the_adapters_tokens_for_every_image(models):
    ctx, _, state = models
    (vision,) = CLIPVisionLoader().run(ctx, "vit.safetensors")
    (adapter,) = StyleModelLoader().run(ctx, "style.safetensors")
    (encoded,) = CLIPVisionEncode().run(ctx, vision, images(), "center")
    prompt = (CondEntry(torch.randn(1, 5, 32)), CondEntry(torch.randn(1, 3, 32)))
    (out,) = StyleModelApply().run(ctx, prompt, adapter, encoded, 0.5, "multiply")
    expected = reference_style_tokens(state, encoded.last_hidden_state).flatten(0, 1)
    assert [tuple(e.embeds.shape) for e in out] == [(1, 5 + 2 * STYLE_TOKENS, 32), (1, 3 + 2 * STYLE_TOKENS, 32)]
    assert torch.equal(out[1].embeds[:, :3], prompt[1].embeds)
    assert torch.allclose(out[1].embeds[0, 3:], expected * 0.5, atol=1e-5)
    (biased,) = StyleModelApply().run(ctx, prompt, adapter, encoded, 0.5, "attn_bias")
    assert torch.allclose(biased[0].embeds[0, 5:], expected, atol=1e-5)


def test_a_file_without_a_style_embedding_is_refused_by_kind():
    with pytest.raises(ValueError, match="Flux Redux"):
        build_style_adapter({"redux_down.weight": torch.zeros(1)}, name="redux.safetensors")
