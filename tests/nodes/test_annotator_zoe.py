"""Zoe-DepthMapPreprocessor runs the pack's `ZoeD_M12_N.pt` from `models/annotators`: a tiny random ZoeDepth saved
under the original file's key names loads through the node (its sizes read from the shapes) and gives what
transformers' model called directly gives, with ZoeDepth's padding, flip and resize and the pack's percentiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from nodes.models.annotators import zoe
from nodes.packs import controlnet_aux as aux

SUBFOLDER = "lllyasviel/Annotators"


def context(models_dir) -> RunContext:
    return RunContext(node_id="1", prompt_id="test", paths=Paths(models_dir), interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings={"device": "cpu"})


def tiny_config():
    """BEiT with 4 blocks of width 32 at a 64 px window, the ZoeDepth heads narrowed to match."""
    from transformers import BeitConfig, ZoeDepthConfig

    backbone = BeitConfig(image_size=64, num_hidden_layers=4, hidden_size=32, intermediate_size=64,
                          num_attention_heads=2, use_relative_position_bias=True, reshape_hidden_states=False,
                          layer_norm_eps=1e-6, out_features=["stage1", "stage2", "stage3", "stage4"])
    return ZoeDepthConfig(backbone_config=backbone, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                          bottleneck_features=16, bin_embedding_dim=16, num_relative_features=8,
                          num_attractors=[4, 3, 2, 1], bin_centers_type="softplus",
                          bin_configurations=[{"n_bins": 8, "min_depth": 1e-3, "max_depth": 10.0}])


@pytest.fixture(scope="module")
def zoe_model(tmp_path_factory):
    """A tiny random ZoeDepth saved as the original `ZoeD_M12_N.pt` (a dict with the state dict under `model`, fp16
    values the reference keeps too), with the buffers and the timm classifier the real file carries."""
    from transformers import ZoeDepthForDepthEstimation

    torch.manual_seed(3)
    model = ZoeDepthForDepthEstimation(tiny_config()).eval()
    with torch.no_grad():
        # transformers' init (std 0.02, zero biases) gives a flat depth: weights scaled to their fan-in instead
        for name, parameter in model.named_parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 1 / math.sqrt(parameter[0].numel()))
            elif name.endswith("bias"):
                parameter.normal_(0, 0.1)
            parameter.copy_(parameter.half().float())
    original = zoe.to_original(model.state_dict())
    extra = {"core.core.pretrained.model.blocks.0.attn.relative_position_index": torch.zeros(17, 17, dtype=torch.long),
             "conditional_log_binomial.log_binomial_transform.k_idx": torch.arange(8).view(1, -1, 1, 1),
             "conditional_log_binomial.log_binomial_transform.K_minus_1": torch.tensor([7]).view(1, -1, 1, 1),
             "core.core.pretrained.model.blocks.0.attn.k_bias": torch.zeros(32),
             "core.core.pretrained.model.fc_norm.weight": torch.ones(32),
             "core.core.pretrained.model.head.weight": torch.zeros(1000, 32)}
    models_dir = tmp_path_factory.mktemp("models")
    folder = models_dir / "annotators" / SUBFOLDER
    folder.mkdir(parents=True)
    torch.save({"model": {key: value.half() if value.is_floating_point() else value
                          for key, value in {**original, **extra}.items()}}, folder / zoe.ZOE_FILE)
    return models_dir, model, original


def reference_depth(model, pixels: torch.Tensor) -> torch.Tensor:
    """ZoeDepth's infer for a 64×512 image (a wide one keeps the network's input small), spelled out: reflect-pad
    int(3·√32) = 16 rows and int(3·√256) = 48 columns on each side (96×608), MiDaS's resize to 96×512 (the width's
    scale, 512/608, is the nearer to 1; 96·512/608 = 80.8 rounds to 96), -1..1, the model, bicubic back to 96×608,
    crop; averaged with the same for the mirrored image."""
    def padded(x):
        x = F.pad(x, [48, 48, 16, 16], mode="reflect")
        net = F.interpolate(x, (96, 512), mode="bilinear", align_corners=True) * 2 - 1
        depth = model(pixel_values=net).predicted_depth[:, None]
        return F.interpolate(depth, (96, 608), mode="bicubic", align_corners=False)[:, :, 16:-16, 48:-48]
    with torch.no_grad():
        return (padded(pixels) + torch.flip(padded(torch.flip(pixels, dims=[3])), dims=[3])) / 2


def test_mapping_gives_the_original_key_layout(zoe_model):
    _, model, original = zoe_model
    assert original["core.core.pretrained.model.blocks.3.attn.qkv.weight"].shape == (96, 32)
    assert {"core.core.pretrained.model.cls_token", "core.core.pretrained.model.patch_embed.proj.weight",
            "core.core.pretrained.model.blocks.0.attn.q_bias", "core.core.pretrained.model.blocks.0.attn.v_bias",
            "core.core.pretrained.model.blocks.0.gamma_1", "core.core.pretrained.model.blocks.2.norm2.bias",
            "core.core.pretrained.model.blocks.1.attn.relative_position_bias_table",
            "core.core.pretrained.act_postprocess1.0.project.0.weight",
            "core.core.pretrained.act_postprocess4.4.weight",
            "core.core.scratch.layer1_rn.weight", "core.core.scratch.refinenet4.resConfUnit1.conv2.bias",
            "core.core.scratch.output_conv.4.weight", "conv2.weight", "seed_bin_regressor._net.2.bias",
            "seed_projector._net.0.weight", "projectors.3._net.2.weight", "attractors.0._net.2.weight",
            "conditional_log_binomial.mlp.2.weight"} <= set(original)
    assert not any(key.startswith(("backbone.", "neck.", "relative_head.", "metric_head.")) for key in original)
    assert not any(key.endswith("k_bias") for key in original)   # BEiT's keys carry no bias
    state = model.state_dict()
    back = zoe.to_transformers(original)
    assert set(back) == set(state) and all(torch.equal(back[key], state[key]) for key in state)
    # MiDaS counts its reassembly and fusion blocks from 1 and fuses the deepest first
    assert torch.equal(original["core.core.pretrained.act_postprocess1.3.weight"],
                       state["neck.reassemble_stage.layers.0.projection.weight"])
    assert torch.equal(original["core.core.scratch.refinenet4.out_conv.weight"],
                       state["neck.fusion_stage.layers.0.projection.weight"])


def test_sizes_are_read_from_the_files_shapes(zoe_model):
    config = zoe.zoe_config(zoe_model[2])
    backbone = config.backbone_config
    assert (backbone.image_size, backbone.hidden_size, backbone.num_hidden_layers, backbone.num_attention_heads,
            backbone.intermediate_size) == (64, 32, 4, 2, 64)
    assert backbone.out_features == ["stage1", "stage2", "stage3", "stage4"]
    assert list(config.neck_hidden_sizes) == [8, 16, 32, 32] and list(config.num_attractors) == [4, 3, 2, 1]
    assert (config.fusion_hidden_size, config.bottleneck_features, config.bin_embedding_dim,
            config.num_relative_features) == (16, 16, 16, 8)
    assert config.bin_configurations == [{"n_bins": 8, "min_depth": 1e-3, "max_depth": 10.0}]


def test_the_real_files_blocks_are_tapped_as_midas_taps_beit_large():
    """24 blocks: MiDaS's BEiT-L/384 hooks blocks 5, 11, 17 and 23 (0-based), transformers' stages 6 … 24."""
    shapes = {"core.core.pretrained.model.patch_embed.proj.weight": (1024, 3, 16, 16),
              "core.core.pretrained.model.blocks.0.attn.relative_position_bias_table": (47 * 47 + 3, 16),
              "core.core.pretrained.model.blocks.0.mlp.fc1.weight": (4096, 1024),
              **{f"core.core.pretrained.model.blocks.{i}.attn.qkv.weight": (3072, 1024) for i in range(24)},
              **{f"core.core.pretrained.act_postprocess{n}.3.weight": (size, 1024, 1, 1)
                 for n, size in zip((1, 2, 3, 4), (256, 512, 1024, 1024))},
              "core.core.scratch.layer1_rn.weight": (256, 256, 3, 3),
              "core.core.scratch.output_conv.2.weight": (32, 128, 3, 3), "conv2.weight": (256, 256, 1, 1),
              "seed_projector._net.2.weight": (128, 128, 1, 1), "seed_bin_regressor._net.2.weight": (64, 256, 1, 1),
              **{f"attractors.{i}._net.2.weight": (n, 128, 1, 1) for i, n in enumerate((16, 8, 4, 1))}}
    config = zoe.zoe_config({key: torch.empty(shape, device="meta") for key, shape in shapes.items()})
    assert config.backbone_config.out_features == ["stage6", "stage12", "stage18", "stage24"]
    assert (config.backbone_config.image_size, config.backbone_config.num_attention_heads) == (384, 16)
    assert config.bin_configurations[0]["n_bins"] == 64 and list(config.num_attractors) == [16, 8, 4, 1]


def test_midas_resize_keeps_the_aspect_ratio_nearest_to_384_by_512():
    assert zoe.midas_size(480, 640) == (384, 512)
    assert zoe.midas_size(512, 512) == (512, 512)    # the width's scale (1) is the nearer to 1
    assert zoe.midas_size(96, 96) == (384, 384)
    assert zoe.midas_size(600, 400) == (768, 512)    # 512/400 = 1.28 is nearer 1 than 384/600 = 0.64
    assert zoe.midas_size(300, 500) == (320, 512)    # 300 · 512/500 = 307.2, to the nearest multiple of 32


def test_a_file_of_another_model_is_refused():
    with pytest.raises(ValueError, match="not a ZoeDepth-N file.*model.diffusion_model"):
        zoe.to_transformers({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)})


def test_zoe_depth_is_the_models_between_its_percentiles_inverted(zoe_model):
    models_dir, model, _ = zoe_model
    image = torch.rand(1, 64, 512, 3)
    out = aux.ZoeDepthMapPreprocessor().run(context(models_dir), image, resolution=64)[0]
    pixels = (image[0] * 255.0).floor().movedim(-1, 0)[None] / 255.0
    depth = reference_depth(model, pixels)[0, 0].numpy()
    near, far = np.percentile(depth, 2), np.percentile(depth, 85)
    expected = torch.from_numpy(np.clip((1.0 - (depth - near) / (far - near)) * 255.0, 0, 255)).floor() / 255.0
    assert out.shape == (1, 64, 512, 3)
    assert torch.allclose(out[0, :, :, 0].double(), expected.double(), atol=1.5 / 255)
    assert torch.equal(out[..., 0], out[..., 2])
    assert (out == 1.0).float().mean() >= 0.019 and (out == 0.0).float().mean() >= 0.149


def test_percentiles_2_and_85_map_to_white_and_black(monkeypatch):
    """A depth ramp 0..99: the 2nd percentile (1.98) and nearer is 255, the 85th (84.15) and farther is 0."""
    ramp = torch.arange(100, dtype=torch.float32).view(1, 1, 10, 10)
    monkeypatch.setattr(zoe, "infer_depth", lambda model, pixels: ramp)
    levels = zoe.zoe_depth_map(torch.nn.Linear(1, 1), torch.zeros(1, 3, 10, 10))[0, 0].flatten()
    assert levels[:3].tolist() == [255.0, 255.0, 254.0]   # (1 - 0.02 / 82.17) · 255 = 254.94, truncated
    assert levels[84:].eq(0).all() and levels[83] == 3.0     # (1 - 81.02 / 82.17) · 255 = 3.57
    assert levels[43] == int((1 - (43 - 1.98) / (84.15 - 1.98)) * 255)


def test_aio_runs_zoe(zoe_model):
    models_dir = zoe_model[0]
    image = torch.rand(1, 64, 512, 3)
    assert torch.equal(aux.AIOPreprocessor().run(context(models_dir), image, "Zoe-DepthMapPreprocessor", 64)[0],
                       aux.ZoeDepthMapPreprocessor().run(context(models_dir), image, resolution=64)[0])


def test_a_missing_zoe_file_names_it_and_where_to_put_it(tmp_path):
    with pytest.raises(aux.AnnotatorModelMissing, match=r"ZoeD_M12_N\.pt.*lllyasviel/Annotators/ZoeD_M12_N\.pt"):
        aux.ZoeDepthMapPreprocessor().run(context(tmp_path), torch.rand(1, 64, 64, 3), resolution=64)
