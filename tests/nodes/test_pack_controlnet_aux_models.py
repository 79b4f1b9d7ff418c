"""comfyui_controlnet_aux's model-based preprocessors run the pack's own weight files from `models/annotators`:
random weights saved under the original files' key names load through the nodes and give what the architectures
called directly give, with the pack's steps around them."""

from __future__ import annotations

import pytest
import torch

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from nodes.models.annotators import midas
from nodes.models.annotators.lineart import LineartGenerator
from nodes.packs import controlnet_aux as aux

SUBFOLDER = "lllyasviel/Annotators"


def context(models_dir) -> RunContext:
    return RunContext(node_id="1", prompt_id="test", paths=Paths(models_dir), interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings={"device": "cpu"})


def uint8_pixels(image: torch.Tensor) -> torch.Tensor:
    """IMAGE [1, H, W, 3] → [1, 3, H, W] of the uint8 values the pack works on."""
    return (image[0] * 255.0).clamp(0, 255).floor().movedim(-1, 0)[None]


@pytest.fixture(scope="module")
def lineart_models(tmp_path_factory):
    """sk_model.pth flat in models/annotators, sk_model2.pth where the pack's download puts it."""
    models_dir = tmp_path_factory.mktemp("models")
    torch.manual_seed(1)
    fine, coarse = LineartGenerator().eval(), LineartGenerator().eval()
    (models_dir / "annotators" / SUBFOLDER).mkdir(parents=True)
    torch.save(fine.state_dict(), models_dir / "annotators" / "sk_model.pth")
    torch.save(coarse.state_dict(), models_dir / "annotators" / SUBFOLDER / "sk_model2.pth")
    return models_dir, fine, coarse


@pytest.fixture(scope="module")
def midas_model(tmp_path_factory):
    """A random DPT-hybrid saved as the original `dpt_hybrid-midas-501f0c75.pt` (fp16 to halve the file; the
    reference keeps the same rounded values), with timm's classifier head the real file carries."""
    models_dir = tmp_path_factory.mktemp("models")
    torch.manual_seed(2)
    model = midas.build_midas()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
        model.head.head[4].bias.fill_(0.5)   # keeps the final ReLU's output above zero
    original = midas.to_original(model.state_dict())
    original["pretrained.model.head.weight"] = torch.zeros(1000, midas.HIDDEN)
    original["pretrained.model.head.bias"] = torch.zeros(1000)
    folder = models_dir / "annotators" / SUBFOLDER
    folder.mkdir(parents=True)
    torch.save({key: value.half() for key, value in original.items()}, folder / midas.MIDAS_FILE)
    return models_dir, model, original


def test_lineart_generator_has_the_original_files_keys():
    keys = set(LineartGenerator().state_dict())
    assert {"model0.1.weight", "model1.3.bias", "model2.2.conv_block.5.weight", "model3.0.weight",
            "model3.3.bias", "model4.1.weight"} <= keys
    assert len(keys) == 2 + 4 + 3 * 4 + 4 + 2   # instance norms carry no weights


def test_lineart_is_the_generator_inverted_at_the_detect_resolution(lineart_models):
    models_dir, fine, _ = lineart_models
    image = torch.rand(1, 64, 64, 3)
    out = aux.LineArtPreprocessor().run(context(models_dir), image, "disable", 64)[0]
    with torch.no_grad():
        line = fine(uint8_pixels(image) / 255.0)[0, 0]
    expected = (255.0 - (line * 255.0).clamp(0, 255).floor()) / 255.0
    assert out.shape == (1, 64, 64, 3)
    assert torch.allclose(out[0, :, :, 0], expected, atol=1.5 / 255)
    assert torch.equal(out[..., 0], out[..., 2])
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_lineart_coarse_uses_sk_model2_from_the_packs_subfolder(lineart_models):
    models_dir, fine, coarse = lineart_models
    image = torch.rand(1, 64, 64, 3)
    out = aux.LineArtPreprocessor().run(context(models_dir), image, "enable", 64)[0]
    with torch.no_grad():
        line = coarse(uint8_pixels(image) / 255.0)[0, 0]
    assert torch.allclose(out[0, :, :, 0], (255.0 - (line * 255.0).floor()) / 255.0, atol=1.5 / 255)
    assert not torch.equal(out, aux.LineArtPreprocessor().run(context(models_dir), image, "disable", 64)[0])


def test_lineart_output_is_cropped_back_from_the_padded_detect_size(lineart_models):
    models_dir, _, _ = lineart_models
    out = aux.LineArtPreprocessor().run(context(models_dir), torch.rand(2, 48, 80, 3), "disable", 64)[0]
    assert out.shape == (2, 64, 107, 3)   # short side to 64, 80·64/48 rounded; padded to 128 to run


def test_midas_mapping_gives_the_original_key_layout(midas_model):
    _, model, original = midas_model
    assert original["pretrained.model.blocks.11.attn.qkv.weight"].shape == (3 * midas.HIDDEN, midas.HIDDEN)
    assert {"pretrained.model.cls_token", "pretrained.model.pos_embed",
            "pretrained.model.patch_embed.backbone.stem.conv.weight",
            "pretrained.model.patch_embed.backbone.stages.2.blocks.8.norm3.bias",
            "pretrained.model.patch_embed.backbone.stages.0.blocks.0.downsample.conv.weight",
            "pretrained.model.patch_embed.proj.weight", "pretrained.model.blocks.0.mlp.fc2.bias",
            "pretrained.act_postprocess3.0.project.0.weight", "pretrained.act_postprocess4.4.weight",
            "scratch.layer4_rn.weight", "scratch.refinenet4.resConfUnit1.conv2.bias",
            "scratch.output_conv.4.weight"} <= set(original)
    assert not any(key.startswith(("dpt.", "neck.", "head.")) for key in original)
    state = model.state_dict()
    back = midas.to_transformers(original)
    assert set(back) == set(state) and all(torch.equal(back[key], state[key]) for key in state)
    # refinenet4 fuses the deepest features: transformers' first fusion layer
    assert torch.equal(original["scratch.refinenet4.out_conv.weight"],
                       state["neck.fusion_stage.layers.0.projection.weight"])


def test_midas_mapping_refuses_a_file_of_another_model():
    with pytest.raises(ValueError, match="not a MiDaS DPT-hybrid file.*model.diffusion_model"):
        midas.to_transformers({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)})


def test_midas_depth_is_the_models_scaled_to_0_255(midas_model):
    models_dir, model, _ = midas_model
    image = torch.rand(1, 64, 64, 3)
    out = aux.MiDaSDepthMapPreprocessor().run(context(models_dir), image, resolution=64)[0]
    with torch.no_grad():
        depth = midas.predict_depth(model, uint8_pixels(image) / 127.5 - 1.0)[0]
    depth = (depth - depth.min()) / (depth - depth.min()).max()
    assert out.shape == (1, 64, 64, 3)
    assert torch.allclose(out[0, :, :, 1], (depth * 255.0).floor() / 255.0, atol=1.5 / 255)
    assert out.min() == 0.0 and out.max() == 1.0
    assert torch.equal(out[..., 0], out[..., 2])


def test_aio_runs_the_model_based_preprocessors(midas_model, lineart_models, tmp_path):
    image = torch.rand(1, 64, 64, 3)
    lineart_dir = lineart_models[0]
    assert torch.equal(aux.AIOPreprocessor().run(context(lineart_dir), image, "LineArtPreprocessor", 64)[0],
                       aux.LineArtPreprocessor().run(context(lineart_dir), image, "disable", 64)[0])
    midas_dir = midas_model[0]
    assert torch.equal(aux.AIOPreprocessor().run(context(midas_dir), image, "MiDaS-DepthMapPreprocessor", 64)[0],
                       aux.MiDaSDepthMapPreprocessor().run(context(midas_dir), image, resolution=64)[0])


def test_a_missing_weight_file_names_it_and_where_to_put_it(tmp_path):
    with pytest.raises(aux.AnnotatorModelMissing, match=r"dpt_hybrid-midas-501f0c75\.pt.*annotators"):
        aux.MiDaSDepthMapPreprocessor().run(context(tmp_path), torch.rand(1, 64, 64, 3), resolution=64)
    with pytest.raises(aux.AnnotatorModelMissing, match=r"sk_model\.pth.*lllyasviel/Annotators/sk_model\.pth"):
        aux.AIOPreprocessor().run(context(tmp_path), torch.rand(1, 64, 64, 3), "LineArtPreprocessor", 64)
    with pytest.raises(aux.AnnotatorModelMissing, match="Zoe-DepthMapPreprocessor"):
        aux.AIOPreprocessor().run(context(tmp_path), torch.rand(1, 64, 64, 3), "Zoe-DepthMapPreprocessor", 64)


@pytest.mark.slow
def test_midas_forward_equals_transformers_own_at_384(midas_model):
    """transformers' own forward takes only square 384×384 inputs for the hybrid: there the two agree."""
    _, model, _ = midas_model
    pixels = torch.rand(1, 3, 384, 384) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(midas.predict_depth(model, pixels), model(pixels).predicted_depth, atol=1e-5)
