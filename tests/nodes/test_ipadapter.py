"""IP-Adapter (cubiq's ComfyUI_IPAdapter_plus pack): files in the pack's layouts load; weight types and
start/end follow the pack's formulas; the hook is on only while sampling and the model is exactly as
before afterwards; presets find files by the pack's name patterns; `/object_info` matches the pack."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import nodes.packs.ipadapter_plus as pack
from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes.models.family import SD15
from nodes.models.handles import ModelHandle
from nodes.models.ipadapter_attention import (
    IPAdapterHook,
    cross_attention_sites,
    layer_weights,
    percent_to_sigma,
    transformer_weight,
)
from nodes.models.ipadapter_model import IPAdapterFileError, load_ipadapter
from nodes.models.patching import model_patches_applied
from nodes.models.tiny import tiny_modules
from nodes.packs.ipadapter_presets import ipadapter_pattern
from nodes.sampling import ModelSampling, unet_denoiser
from tests.nodes.comfy_ipadapter_object_info import COMFY_IPADAPTER_NODES
from tests.nodes.object_info_checks import assert_inputs_match
from tests.nodes.vision_models import VISION_PROJECTION, VISION_WIDTH, save_clip_vision

VISION_NAME = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"  # the name the SD1.5 presets look for
RESAMPLER_INNER = 12 * 64  # the pack's Resampler: 12 heads of 64 for SD1.5


def _randn(generator, *shape, scale=0.1, offset=0.0):
    return torch.randn(*shape, generator=generator) * scale + offset


def ipadapter_state(unet: torch.nn.Module, kind: str, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Random weights in the pack's layout for the tiny UNet: base (ImageProjModel on the image embedding)
    or plus (Resampler on the penultimate hidden states, 16 tokens)."""
    g = torch.Generator().manual_seed(seed)
    cross = int(unet.config.cross_attention_dim)
    ip = {}
    for site in cross_attention_sites(unet):
        hidden = site.module.to_k.weight.shape[0]
        ip[f"{2 * site.number + 1}.to_k_ip.weight"] = _randn(g, hidden, cross, scale=0.3)
        ip[f"{2 * site.number + 1}.to_v_ip.weight"] = _randn(g, hidden, cross, scale=0.3)
    if kind == "base":
        proj = {"proj.weight": _randn(g, 4 * cross, VISION_PROJECTION), "proj.bias": _randn(g, 4 * cross),
                "norm.weight": _randn(g, cross, offset=1.0), "norm.bias": _randn(g, cross)}
    else:
        proj = {"latents": _randn(g, 1, 16, cross, scale=0.2), "proj_in.weight": _randn(g, cross, VISION_WIDTH),
                "proj_in.bias": _randn(g, cross), "proj_out.weight": _randn(g, cross, cross),
                "proj_out.bias": _randn(g, cross), "norm_out.weight": _randn(g, cross, offset=1.0),
                "norm_out.bias": _randn(g, cross)}
        for i in range(4):
            layer = f"layers.{i}."
            proj.update({
                layer + "0.norm1.weight": _randn(g, cross, offset=1.0), layer + "0.norm1.bias": _randn(g, cross),
                layer + "0.norm2.weight": _randn(g, cross, offset=1.0), layer + "0.norm2.bias": _randn(g, cross),
                layer + "0.to_q.weight": _randn(g, RESAMPLER_INNER, cross),
                layer + "0.to_kv.weight": _randn(g, 2 * RESAMPLER_INNER, cross),
                layer + "0.to_out.weight": _randn(g, cross, RESAMPLER_INNER, scale=0.03),
                layer + "1.0.weight": _randn(g, cross, offset=1.0), layer + "1.0.bias": _randn(g, cross),
                layer + "1.1.weight": _randn(g, 4 * cross, cross), layer + "1.3.weight": _randn(g, cross, 4 * cross),
            })
    return {"image_proj": proj, "ip_adapter": ip}


def save_ipadapter(folder: Path, name: str, unet: torch.nn.Module, kind: str, seed: int = 0) -> Path:
    """The pack's file layouts: a `.bin` nests the two dicts, a `.safetensors` prefixes their keys."""
    folder.mkdir(parents=True, exist_ok=True)
    state = ipadapter_state(unet, kind, seed)
    path = folder / name
    if name.endswith(".safetensors"):
        save_file({f"{part}.{k}": v.contiguous() for part, d in state.items() for k, v in d.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def context(root: Path) -> RunContext:
    return RunContext(node_id="1", prompt_id="test", paths=Paths(root, root / "in", root / "out", root / "tmp"),
                      interrupt=InterruptHandle(), emit=lambda event, data: None, settings={"precision": "fp32"})


def tiny_image(seed: int = 1) -> torch.Tensor:
    """A 32 px image on whole 8-bit levels (CLIP preprocessing leaves it unchanged)."""
    levels = torch.randint(0, 256, (1, 32, 32, 3), generator=torch.Generator().manual_seed(seed))
    return levels.float() / 255.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    modules = tiny_modules(SD15, 3)
    save_clip_vision(root / "clip_vision", VISION_NAME)
    save_ipadapter(root / "ipadapter", "ip-adapter_sd15.safetensors", modules["unet"], "base", seed=5)
    save_ipadapter(root / "ipadapter", "ip-adapter-plus_sd15.bin", modules["unet"], "plus", seed=6)
    model = ModelHandle(modules["unet"], SD15, ModelSampling("epsilon"), "tiny")
    return root, model


@pytest.fixture(scope="module")
def loaded(setup):
    """The two adapters (through the loader node) and the CLIP vision tower, loaded once."""
    root, _ = setup
    ctx = context(root)
    adapters = {name: pack.IPAdapterModelLoader().run(ctx, name)[0]
                for name in ("ip-adapter_sd15.safetensors", "ip-adapter-plus_sd15.bin")}
    return adapters, pack.load_clip_vision(root / "clip_vision" / VISION_NAME)


# --- files --------------------------------------------------------------------------------------------

def test_both_file_layouts_load_and_are_told_apart(setup):
    root, _ = setup
    base = load_ipadapter(root / "ipadapter" / "ip-adapter_sd15.safetensors")
    plus = load_ipadapter(root / "ipadapter" / "ip-adapter-plus_sd15.bin")
    assert not base.is_plus and plus.is_plus and not base.is_sdxl
    assert set(base.ip_adapter) == {f"{k}.to_{kv}_ip.weight" for k in (1, 3, 5, 7) for kv in "kv"}
    assert "latents" in plus.image_proj and base.layers == 16


def test_a_file_without_adapter_tensors_is_an_error_naming_it(tmp_path):
    save_file({"proj.weight": torch.zeros(2, 2)}, str(tmp_path / "not-an-adapter.safetensors"))
    with pytest.raises(IPAdapterFileError, match="not-an-adapter"):
        load_ipadapter(tmp_path / "not-an-adapter.safetensors")


# --- the pack's formulas ------------------------------------------------------------------------------

def test_ease_and_weak_weight_types_follow_the_pack():
    w = 0.8
    assert transformer_weight(w, "ease in", 4, 16, "input") == pytest.approx(w * (0.05 + 0.95 * (1 - 4 / 16)))
    assert transformer_weight(w, "ease out", 4, 16, "input") == pytest.approx(w * (0.05 + 0.95 * 4 / 16))
    assert transformer_weight(w, "ease in-out", 2, 16, "input") == pytest.approx(w * (0.05 + 0.95 * (1 - 6 / 8)))
    assert transformer_weight(w, "reverse in-out", 2, 16, "input") == pytest.approx(w * (0.05 + 0.95 * 6 / 8))
    assert transformer_weight(w, "weak input", 0, 16, "input") == pytest.approx(w * 0.2)
    assert transformer_weight(w, "weak input", 9, 16, "output") == w
    assert transformer_weight(w, "strong middle", 9, 16, "output") == pytest.approx(w * 0.2)
    assert transformer_weight(w, "strong middle", 6, 16, "middle") == w


def test_layer_selecting_weight_types_pick_the_packs_transformers():
    assert layer_weights(1.0, "style transfer", is_sdxl=True) == {6: 1.0}
    assert layer_weights(1.0, "composition", is_sdxl=False) == {4: 0.25, 5: 1.0}
    assert set(layer_weights(1.0, "style transfer", is_sdxl=False)) == {0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15}
    precise = layer_weights(1.0, "composition precise", is_sdxl=True)
    assert precise[3] == 1.0 and precise[6] == 1.0 and precise[0] == pytest.approx(0.1)
    assert transformer_weight({6: 0.7}, "style transfer", 5, 11, "input") is None
    assert layer_weights(0.6, "linear", is_sdxl=False) == 0.6


def test_cross_attentions_are_numbered_as_the_files_and_indexed_as_comfyuis_transformers(setup):
    _, model = setup
    sites = [(s.number, s.t_idx, s.block_type) for s in cross_attention_sites(model.unet)]
    # files: diffusers' module order (down, up, mid); t_idx: forward order (input, middle, output)
    assert sites == [(0, 0, "input"), (1, 2, "output"), (2, 3, "output"), (3, 1, "middle")]


def test_start_and_end_are_comfyuis_percent_to_sigma():
    ms = ModelSampling("epsilon")
    assert percent_to_sigma(ms, 0.0) > 1e8 and percent_to_sigma(ms, 1.0) == 0.0
    assert percent_to_sigma(ms, 0.5) == pytest.approx(float(ms.sigma(torch.tensor(499.5))))


# --- the hook -----------------------------------------------------------------------------------------

def _apply(setup, loaded, name="ip-adapter_sd15.safetensors", **options):
    root, model = setup
    adapters, vision = loaded
    args = dict(weight=1.0, weight_type="linear", combine_embeds="concat", start_at=0.0, end_at=1.0,
                embeds_scaling="V only", image_negative=None, attn_mask=None, clip_vision=vision)
    args.update(options)
    return pack.IPAdapterAdvanced().run(context(root), model, adapters[name], tiny_image(), **args)[0]


def _denoise(model, sigma=3.0):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=g)
    pos, neg = torch.randn(1, 77, 32, generator=g), torch.randn(1, 77, 32, generator=g)
    with model_patches_applied(model) as unet:
        return unet_denoiser(unet, model.model_sampling, pos, neg, 4.0)(x, torch.tensor(sigma))


def test_the_adapter_acts_only_while_sampling_and_leaves_the_unet_as_it_was(setup, loaded):
    _, model = setup
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    plain = _denoise(model)
    patched = _apply(setup, loaded)
    assert isinstance(patched.hooks[-1], IPAdapterHook) and patched.unet is model.unet
    assert (_denoise(patched) - plain).abs().max() > 1e-3
    assert torch.equal(_denoise(model), plain)
    assert all(torch.equal(v, before[k]) for k, v in model.unet.state_dict().items())


def test_weight_zero_and_a_window_that_excludes_the_sigma_change_nothing(setup, loaded):
    _, model = setup
    plain = _denoise(model, sigma=3.0)
    assert torch.equal(_denoise(_apply(setup, loaded, weight=0.0)), plain)
    # start 0.9 → sigma ≈ 0.1·999 steps from the end: far below 3, so the adapter is off at sigma 3
    assert torch.equal(_denoise(_apply(setup, loaded, start_at=0.9), sigma=3.0), plain)
    assert not torch.equal(_denoise(_apply(setup, loaded, start_at=0.0, end_at=0.5), sigma=3.0), plain)


def test_an_attention_mask_limits_where_the_adapter_acts(setup, loaded):
    _, model = setup
    plain, unmasked = _denoise(model), _denoise(_apply(setup, loaded))
    assert torch.equal(_denoise(_apply(setup, loaded, attn_mask=torch.zeros(1, 64, 64))), plain)
    assert torch.allclose(_denoise(_apply(setup, loaded, attn_mask=torch.ones(1, 64, 64))), unmasked, atol=1e-6)
    half = torch.zeros(1, 64, 64)
    half[:, :, :32] = 1.0
    assert not torch.allclose(_denoise(_apply(setup, loaded, attn_mask=half)), unmasked, atol=1e-4)


def test_the_encoders_mask_multiplies_the_clip_pixels(setup, loaded):
    root, _ = setup
    adapters, vision = loaded
    ipadapter = adapters["ip-adapter_sd15.safetensors"]
    encode = pack.IPAdapterEncoder().run
    full = encode(context(root), ipadapter, tiny_image(), 1.0, None, vision)[0]
    assert torch.allclose(encode(context(root), ipadapter, tiny_image(), 1.0, torch.ones(1, 48, 48), vision)[0], full,
                          atol=1e-5)
    black = pack.encode_for(ipadapter.weights, vision, torch.zeros(1, 32, 32, 3))
    masked_out = encode(context(root), ipadapter, tiny_image(), 0.5, torch.zeros(1, 32, 32), vision)[0]
    assert not torch.allclose(masked_out, black * 0.5, atol=1e-4)  # zero normalised pixels, not a black image
    assert torch.allclose(encode(context(root), ipadapter, tiny_image(), 0.5, None, vision)[0], full * 0.5)


def test_embeds_scaling_follows_the_pack(setup, loaded):
    _, model = setup
    hook = _apply(setup, loaded).hooks[-1]
    site = cross_attention_sites(model.unet)[0]
    k_ip, v_ip = hook.weights.kv(site.number)
    hidden = torch.randn(1, 16, 32, generator=torch.Generator().manual_seed(2)).repeat(2, 1, 1)

    def out(weight, scaling):
        changed = replace(hook, weight=weight, embeds_scaling=scaling)
        return changed.image_attention(site.module, hidden, k_ip, v_ip, site, (0, 1), (2, 4, 4, 4))

    with torch.no_grad():
        assert torch.allclose(out(0.5, "V only"), out(1.0, "V only") * 0.5, atol=1e-6)  # the output weighted
        assert torch.allclose(out(1.0, "K+V"), out(1.0, "V only"), atol=1e-6)
        assert not torch.allclose(out(0.5, "K+V"), out(0.5, "V only"), atol=1e-4)  # keys weighted too
        channels = k_ip.shape[0]  # C penalty: the weight times channels / 1280
        assert torch.allclose(out(0.8, "K+V w/ C penalty"), out(0.8 * channels / 1280, "K+V"), atol=1e-6)
        cond_only = out(1.0, "V only")
        assert not torch.allclose(cond_only[:1], cond_only[1:], atol=1e-4)  # the negative chunk: uncond tokens


def test_plus_and_the_embeds_path_give_the_same_model_as_the_advanced_node(setup, loaded):
    root, model = setup
    ctx = context(root)
    adapters, vision = loaded
    ipadapter = adapters["ip-adapter-plus_sd15.bin"]
    pos, neg = pack.IPAdapterEncoder().run(ctx, ipadapter, tiny_image(), 1.0, None, vision)
    assert pos.shape[1:] == (17, VISION_WIDTH)  # penultimate hidden states
    via_embeds = pack.IPAdapterEmbeds().run(ctx, model, ipadapter, pos, 1.0, "linear", 0.0, 1.0, "V only", neg, None,
                                            vision)[0]
    direct = _apply(setup, loaded, name="ip-adapter-plus_sd15.bin")
    assert torch.allclose(_denoise(via_embeds), _denoise(direct), atol=1e-6)


def test_unified_loader_finds_the_preset_files_by_the_packs_patterns(setup):
    root, model = setup
    ctx = context(root)
    out_model, pipeline = pack.IPAdapterUnifiedLoader().run(ctx, model, "PLUS (high strength)", None)
    assert out_model is model and pipeline.weights.source == "ip-adapter-plus_sd15.bin"
    assert pipeline.clip_vision is not None
    assert pack.IPAdapterUnifiedLoader().run(ctx, model, "STANDARD (medium strength)", None)[1].weights.source \
        == "ip-adapter_sd15.safetensors"
    with pytest.raises(FileNotFoundError, match="IPAdapter model not found"):
        pack.IPAdapterUnifiedLoader().run(ctx, model, "PLUS FACE (portraits)", None)
    with pytest.raises(ValueError, match="not supported for SDXL"):
        ipadapter_pattern("FULL FACE - SD1.5 only (portraits stronger)", True, [])
    stamp = pack.IPAdapterUnifiedLoader().fingerprint(ctx.paths, "PLUS (high strength)")
    assert "missing" in stamp  # no SDXL files here
    os.utime(root / "ipadapter" / "ip-adapter-plus_sd15.bin", ns=(1_000_000_000, 1_000_000_000))
    assert pack.IPAdapterUnifiedLoader().fingerprint(ctx.paths, "PLUS (high strength)") != stamp  # file replaced
    simple = pack.IPAdapter().run(ctx, model, pipeline, tiny_image(), 0.7, 0.0, 1.0, "prompt is more important",
                                  None)[0]
    hook = simple.hooks[-1]
    assert hook.weights is pipeline.weights and (hook.weight, hook.weight_type) == (0.7, "ease out")


def test_prep_image_crops_at_the_named_side_and_resizes_to_224():
    image = torch.zeros(1, 40, 60, 3)
    image[:, :, :20] = 1.0  # the left third is white
    out = pack.PrepImageForClipVision().run(None, image, "NEAREST", "left", 0.0)[0]
    assert out.shape == (1, 224, 224, 3)
    assert out[0, :, :100].min() == 1.0 and out[0, :, -50:].max() == 0.0
    padded = pack.square(torch.ones(1, 3, 40, 60), "pad")
    assert padded.shape == (1, 3, 60, 60) and padded[0, 0, 0, 0] == 0 and padded[0, 0, 30, 30] == 1


# --- /object_info -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    registry.register_module(pack)
    return registry.object_info()


def test_the_module_declares_exactly_the_ported_nodes(object_info):
    assert set(object_info) == set(COMFY_IPADAPTER_NODES)


@pytest.mark.parametrize("class_type", sorted(COMFY_IPADAPTER_NODES))
def test_declarations_match_the_pack(object_info, class_type):
    ours, theirs = object_info[class_type], COMFY_IPADAPTER_NODES[class_type]
    assert_inputs_match(ours, theirs)
    assert list(zip(ours["output"], ours["output_name"])) == theirs["outputs"]
    assert ours["category"] == theirs["category"] and ours["display_name"] == theirs["display_name"]
    assert ours["python_module"] == "nodes.packs.ipadapter_plus" and not ours["deprecated"]
