"""Model patches (FreeU, HyperTile, ToMe, PAG): they change what the UNet computes only while it
samples, and the model is exactly as before afterwards; FreeU follows ComfyUI's formula."""

import math

import pytest
import torch

from nodes.model_patches import FreeU, FreeU_V2, HyperTile, PerturbedAttentionGuidance, TomePatchModel
from nodes.models.attention_patches import bipartite_soft_matching, from_tiles, to_tiles, token_grid
from nodes.models.family import SD15
from nodes.models.freeu import FreeUHook, fourier_filter
from nodes.models.handles import ModelHandle
from nodes.models.patching import model_patches_applied
from nodes.models.tiny import tiny_modules
from nodes.sampling import ModelSampling, unet_denoiser


@pytest.fixture(scope="module")
def model():
    unet = tiny_modules(SD15, 4)["unet"]
    return ModelHandle(unet, SD15, ModelSampling("epsilon"), "tiny")


def unet_output(model, x, embeds):
    with model_patches_applied(model) as unet, torch.no_grad():
        return unet(x, torch.tensor([500.0]), encoder_hidden_states=embeds).sample


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 4, 16, 16, generator=generator), torch.randn(2, 77, 32, generator=generator)


def test_fourier_filter_scales_the_centre_square_of_the_shifted_spectrum():
    # Worked out by hand for a 4×4 image and threshold 1: the centre square holds the frequencies
    # -1 and 0 of each axis. A constant (frequency 0) is scaled, the checkerboard (frequency 2) kept,
    # and a cosine of frequency 1 keeps its +1 half while its -1 half is scaled: (1 + s) / 2.
    s = 0.3
    k = torch.arange(4.0)
    constant = torch.full((1, 1, 4, 4), 2.0)
    checker = ((-1.0) ** (k[:, None] + k[None, :]))[None, None]
    cosine = torch.cos(2 * math.pi * k / 4)[None, :].expand(4, 4)[None, None]
    assert torch.allclose(fourier_filter(constant, 1, s), constant * s, atol=1e-6)
    assert torch.allclose(fourier_filter(checker, 1, s), checker, atol=1e-6)
    assert torch.allclose(fourier_filter(cosine, 1, s), cosine * (1 + s) / 2, atol=1e-6)
    assert fourier_filter(constant.to(torch.bfloat16), 1, s).dtype == torch.bfloat16


def test_freeu_scales_by_channel_count_as_comfyui(model):
    hook = FreeUHook(1.5, 1.2, 0.5, 0.2)
    scales = {128: (1.5, 0.5), 64: (1.2, 0.2)}  # model_channels 32: ×4 and ×2
    h, skip = torch.randn(1, 64, 4, 4), torch.randn(1, 32, 4, 4)
    new_h, new_skip = hook.patch(h.clone(), skip, scales)
    assert torch.equal(new_h[:, :32], h[:, :32] * 1.2) and torch.equal(new_h[:, 32:], h[:, 32:])
    assert torch.allclose(new_skip, fourier_filter(skip, 1, 0.2))
    same_h, same_skip = hook.patch(torch.randn(1, 32, 4, 4), skip, scales)
    assert same_skip is skip  # 32 channels: neither 4× nor 2× the first level


@pytest.mark.parametrize("make", [
    lambda m: FreeU().run(None, m, 1.1, 1.2, 0.9, 0.2)[0],
    lambda m: FreeU_V2().run(None, m, 1.3, 1.4, 0.9, 0.2)[0],
    lambda m: HyperTile().run(None, m, 32, 2, 1, False)[0],
    lambda m: TomePatchModel().run(None, m, 0.5)[0],
], ids=["FreeU", "FreeU_V2", "HyperTile", "TomePatchModel"])
def test_a_patch_changes_the_output_only_while_applied_and_restores_the_model_exactly(model, inputs, make):
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    plain = unet_output(model, *inputs)
    patched = unet_output(make(model), *inputs)
    assert patched.shape == plain.shape and torch.isfinite(patched).all()
    assert not torch.allclose(patched, plain, atol=1e-6)
    assert torch.equal(unet_output(model, *inputs), plain)
    assert all(torch.equal(v, before[k]) for k, v in model.unet.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.unet.modules())


def test_a_patch_is_removed_even_when_sampling_fails(model):
    patched = FreeU().run(None, model, 1.1, 1.2, 0.9, 0.2)[0]
    with pytest.raises(RuntimeError), model_patches_applied(patched):
        raise RuntimeError("interrupted")
    assert not any(m._forward_pre_hooks for m in model.unet.modules())


def test_tiles_and_token_grid_invert_and_follow_the_aspect_ratio():
    x = torch.randn(2, 8 * 12, 5)
    assert torch.equal(from_tiles(to_tiles(x, 2, 3, 8, 12), 2, 3, 8, 12), x)
    assert to_tiles(x, 2, 3, 8, 12).shape == (12, 16, 5)
    assert token_grid(64, 1.0) == (8, 8)
    assert token_grid(128, 2.0) == (16, 8)  # ComfyUI's formula: h follows width / height


def test_token_merging_removes_r_tokens_and_unmerge_restores_the_count():
    x = torch.randn(2, 64, 8)
    merge, unmerge = bipartite_soft_matching(x, 8, 8, 2, 2, 20, torch.Generator().manual_seed(0))
    merged = merge(x)
    assert merged.shape == (2, 44, 8)
    restored = unmerge(merged)
    assert restored.shape == x.shape
    kept = (restored == x).all(dim=-1).sum(dim=-1)
    assert (kept >= 44 - 16).all()  # unmerged sources and untouched destinations come back as they were


def test_pag_adds_the_difference_to_a_perturbed_prediction(model, inputs):
    x, embeds = inputs[0][:1], inputs[1][:1]
    patched = PerturbedAttentionGuidance().run(None, model, 2.0)[0]
    sigma = torch.tensor(3.0)
    with torch.no_grad():
        plain = unet_denoiser(model.unet, model.model_sampling, embeds, embeds, 5.0)(x, sigma)
        guided = unet_denoiser(model.unet, model.model_sampling, embeds, embeds, 5.0, patched.post_cfg)(x, sigma)
        off = unet_denoiser(model.unet, model.model_sampling, embeds, embeds, 5.0,
                            PerturbedAttentionGuidance().run(None, model, 0.0)[0].post_cfg)(x, sigma)
    assert torch.equal(off, plain)
    assert not torch.allclose(guided, plain, atol=1e-6)
    assert not any(m._forward_hooks for m in model.unet.modules())


def test_object_info_of_every_patch_and_merge_node_matches_comfyui():
    from engine.registry import NodeRegistry
    from tests.nodes.comfy_patches_object_info import COMFY_PATCH_NODES
    from tests.nodes.test_toolbox_object_info import comparable

    registry = NodeRegistry()
    for module in ("nodes.model_patches", "nodes.model_merging", "nodes.checkpoint_save"):
        registry.register_module(__import__(module, fromlist=["_"]))
    info = registry.object_info()
    for class_type, theirs in COMFY_PATCH_NODES.items():
        ours = info[class_type]
        assert list(ours["input"]["required"]) == list(theirs["required"]), class_type
        for name, entry in theirs["required"].items():
            assert comparable(ours["input"]["required"][name]) == comparable(entry), (class_type, name)
        assert ours["input"].get("hidden", {}) == theirs.get("hidden", {}), class_type
        assert (ours["output"], ours["category"], ours["display_name"], ours["output_node"]) == (
            theirs["output"], theirs["category"], theirs["display_name"], theirs.get("output_node", False)), class_type
