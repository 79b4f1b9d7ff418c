"""Model merges and CheckpointSave: merges are patches computed like ComfyUI's, the loaded modules are
never changed, and a merged-then-saved checkpoint reloads to exactly the weights that were merged."""

import json

import pytest
import torch
from safetensors import safe_open

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from nodes.checkpoint_save import CheckpointSave, patched_state_dict
from nodes.model_merging import (
    CLIPMergeSimple,
    ModelMergeAdd,
    ModelMergeBlocks,
    ModelMergeSimple,
    ModelMergeSubtract,
)
from nodes.models.checkpoint import load_checkpoint
from nodes.models.family import SD15
from nodes.models.handles import ClipHandle, ModelHandle, VaeHandle
from nodes.models.merging import block_ratio, ldm_unet_names
from nodes.models.patching import applied, model_patches_applied
from nodes.models.tiny import tiny_modules
from nodes.sampling import ModelSampling


def handles(seed):
    modules = tiny_modules(SD15, seed)
    model = ModelHandle(modules["unet"], SD15, ModelSampling("epsilon"), f"m{seed}")
    clip = ClipHandle((modules["text_encoder"],), (None,), SD15, source=f"c{seed}")
    return model, clip, VaeHandle(modules["vae"], 0.18215, f"v{seed}")


@pytest.fixture(scope="module")
def pair():
    return handles(1), handles(2)


def context(tmp_path, prompt=None):
    return RunContext("9", "p", Paths(output_dir=tmp_path), InterruptHandle(), lambda *_: None,
                      prompt=prompt or {}, extra_pnginfo={"workflow": {"nodes": []}})


def unet_weights(model):
    with model_patches_applied(model) as unet:
        return {k: v.clone() for k, v in unet.state_dict().items()}


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_merge_simple_blends_each_weight_in_float32_and_leaves_both_models_untouched(pair):
    (m1, _, _), (m2, _, _) = pair
    before1, before2 = snapshot(m1.unet), snapshot(m2.unet)
    merged = ModelMergeSimple().run(None, m1, m2, 0.25)[0]
    weights = unet_weights(merged)
    for name, w1 in before1.items():
        expected = (w1.float() * 0.25 + before2[name].float() * 0.75).to(w1.dtype)
        assert torch.equal(weights[name], expected), name
    for name, value in m1.unet.state_dict().items():
        assert torch.equal(value, before1[name])
    assert ModelMergeSimple().run(None, m1, m2, 1.0)[0].patches == ()  # ratio 1: nothing to apply


def test_add_and_subtract_follow_comfyui(pair):
    (m1, _, _), (m2, _, _) = pair
    w1, w2 = snapshot(m1.unet), snapshot(m2.unet)
    added = unet_weights(ModelMergeAdd().run(None, m1, m2)[0])
    subtracted = unet_weights(ModelMergeSubtract().run(None, m1, m2, 0.5)[0])
    name = "conv_in.weight"
    assert torch.equal(added[name], w1[name] + w2[name])
    assert torch.allclose(subtracted[name], (w1[name] - w2[name]) * 0.5, atol=1e-7)


def test_blocks_merge_picks_the_ratio_by_the_original_layer_names(pair):
    (m1, _, _), (m2, _, _) = pair
    names = ldm_unet_names(m1.unet)
    assert names["conv_in.weight"] == "input_blocks.0.0.weight"
    assert names["conv_out.weight"] == "out.2.weight"
    ratios = {"input": 0.1, "middle": 0.5, "out": 0.9}
    assert block_ratio("middle_block.1.proj_in.weight", ratios) == 0.5
    assert block_ratio("output_blocks.2.0.in_layers.0.weight", ratios) == 0.9
    assert block_ratio("time_embed.0.weight", ratios) == 0.1  # no prefix: the first ratio
    w1, w2 = snapshot(m1.unet), snapshot(m2.unet)
    weights = unet_weights(ModelMergeBlocks().run(None, m1, m2, 0.1, 0.5, 0.9)[0])
    for name, ratio in [("conv_in.weight", 0.1), ("mid_block.resnets.0.conv1.weight", 0.5),
                        ("up_blocks.0.resnets.0.conv1.weight", 0.9), ("conv_out.weight", 0.9)]:
        assert torch.equal(weights[name], w1[name] * ratio + w2[name] * (1 - ratio)), name


def test_clip_merge_patches_the_text_encoder_only_while_it_runs(pair):
    (_, c1, _), (_, c2, _) = pair
    encoder = c1.text_encoders[0]
    before = snapshot(encoder)
    merged = CLIPMergeSimple().run(None, c1, c2, 0.5)[0]
    with applied(encoder, merged.patches):
        name = next(k for k in before if k.endswith("final_layer_norm.weight"))
        expected = before[name] * 0.5 + c2.text_encoders[0].state_dict()[name] * 0.5
        assert torch.equal(encoder.state_dict()[name], expected)
    assert all(torch.equal(v, before[k]) for k, v in encoder.state_dict().items())


def test_merged_then_saved_checkpoint_reloads_bit_identically(pair, tmp_path):
    (m1, c1, v1), (m2, c2, _) = pair
    model = ModelMergeSimple().run(None, m1, m2, 0.3)[0]
    model = ModelMergeBlocks().run(None, model, m2, 0.2, 0.6, 1.0)[0]
    clip = CLIPMergeSimple().run(None, c1, c2, 0.4)[0]
    CheckpointSave().run(context(tmp_path, {"1": {"class_type": "X"}}), model, clip, v1, "checkpoints/merged")
    CheckpointSave().run(context(tmp_path), model, clip, v1, "checkpoints/merged")
    saved = sorted((tmp_path / "checkpoints").iterdir())
    assert [p.name for p in saved] == ["merged_00001_.safetensors", "merged_00002_.safetensors"]  # never overwritten
    with safe_open(str(saved[0]), "pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata["prompt"]) == {"1": {"class_type": "X"}}
    assert json.loads(metadata["workflow"]) == {"nodes": []}

    loaded = load_checkpoint(saved[0], dtype=torch.float32)
    assert loaded.family == SD15
    expected_unet = patched_state_dict(m1.unet, model.patches, "unet")
    for name, value in loaded.unet.state_dict().items():
        assert torch.equal(value, expected_unet[name]), name
    expected_text = patched_state_dict(c1.text_encoders[0], clip.patches, "text_encoder")
    for name, value in loaded.text_encoders[0].state_dict().items():
        if name in expected_text:
            assert torch.equal(value, expected_text[name]), name
    vae = v1.vae.state_dict()
    assert all(torch.equal(value, vae[name]) for name, value in loaded.vae.state_dict().items())
