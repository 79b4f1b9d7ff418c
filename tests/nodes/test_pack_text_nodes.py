"""WAS, _O, essentials, Comfyroll and Custom-Scripts nodes: values as each pack's source computes them."""

import random
import time

import pytest
import torch
import torch.nn.functional as F

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths, UnsafePathError
from engine.registry import NodeRegistry
from nodes.packs.comfyroll import HELP_URL, CRLoadLoRA
from nodes.packs.custom_scripts import PresetText
from nodes.packs.essentials import ImageResizePlus
from nodes.packs.omar92 import ImageScaleFactorO, LatentUpscaleFactorO, TextO, nearest_multiple_of_8
from nodes.packs.was_text import (
    ImageResizeWAS,
    LatentUpscaleByFactorWAS,
    LoadTextFile,
    TextAddTokenByInput,
    TextConcatenate,
    TextFindAndReplaceInput,
    TextMultiline,
    TextParseTokens,
    TextRandomLine,
    TextString,
    TextToConsole,
)


@pytest.fixture
def ctx(tmp_path):
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    return RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings={})


def test_the_packs_load_from_the_nodes_package_and_name_their_pack():
    registry = NodeRegistry()
    registry.load_package("nodes")
    for class_type, category in [("Text Multiline", "WAS Suite/Text"), ("Text _O", "O/utils"),
                                 ("ImageResize+", "essentials/image manipulation"),
                                 ("CR Load LoRA", "🧩 Comfyroll Studio/✨ Essential/💊 LoRA"),
                                 ("PresetText|pysssss", "utils")]:
        info = registry.get(class_type).object_info()
        assert info["category"] == category
        assert info["python_module"].startswith("nodes.packs.")


def test_text_multiline_drops_comment_lines_and_expands_tokens(ctx):
    text = "a cat\n  # a comment\n[hostname] at [time(%Y)]\n"
    (out,) = TextMultiline().run(ctx, text)
    import socket
    assert out == f"a cat\n{socket.gethostname()} at {time.strftime('%Y')}"


def test_custom_tokens_added_by_one_node_are_expanded_by_the_others(ctx):
    TextAddTokenByInput().run(ctx, "[style]", "watercolour", "false")
    assert TextParseTokens().run(ctx, "a [style] fox")[0] == "a watercolour fox"
    assert TextString().run(ctx, "[style]", None, "x", "") == ("watercolour", "", "x", "")
    with pytest.raises(ValueError, match="token_name is empty"):
        TextAddTokenByInput().run(ctx, " ", "v", "false")


def test_text_concatenate_skips_empty_inputs_and_reads_a_typed_newline(ctx):
    node = TextConcatenate()
    assert node.run(ctx, ", ", "true", " a ", None, "", "d")[0] == "a, d"
    assert node.run(ctx, "\\n", "false", " a", "b", None, None)[0] == " a\nb"
    assert node.run(ctx, "-", "false", "   ", "b", None, None)[0] == "   -b"


def test_text_random_line_picks_what_python_random_seeded_with_the_seed_picks(ctx):
    text = "red\ngreen\nblue\nyellow"
    for seed in (0, 1, 42, 2**40):
        random.seed(seed)
        assert TextRandomLine().run(ctx, text, seed)[0] == random.choice(text.split("\n"))


def test_find_and_replace_repeats_until_none_is_left_and_counts(ctx):
    assert TextFindAndReplaceInput().run(ctx, "aaa", "aa", "a") == ("a", 2, 2.0, 2)
    assert TextFindAndReplaceInput().run(ctx, "a cat, a cat", "cat", "dog") == ("a dog, a dog", 2, 2.0, 2)
    with pytest.raises(ValueError, match="endless"):
        TextFindAndReplaceInput().run(ctx, "cat", "cat", "cats")


def test_text_to_console_passes_the_text_on(ctx, capsys):
    assert TextToConsole().run(ctx, "hello", "My label") == ("hello",)
    assert "My label:\nhello" in capsys.readouterr().out


def test_load_text_file_reads_inside_the_input_folder_only(ctx):
    ctx.paths.input_dir.mkdir(parents=True)
    (ctx.paths.input_dir / "prompts.txt").write_text("# header\nfirst\r\nsecond\n", encoding="utf-8")
    assert LoadTextFile().run(ctx, "prompts.txt", "[filename]") == ("first\nsecond", {"prompts": ["first", "second"]})
    assert LoadTextFile().run(ctx, "prompts.txt", "mine")[1] == {"mine": ["first", "second"]}
    with pytest.raises(UnsafePathError):
        LoadTextFile().run(ctx, "../outside.txt", "[filename]")


def test_was_latent_upscale_rounds_each_side_and_honours_align(ctx):
    latent = torch.randn(1, 4, 8, 6)
    (out,) = LatentUpscaleByFactorWAS().run(ctx, {"samples": latent}, "bilinear", 1.5, "true")
    assert torch.equal(out["samples"], F.interpolate(latent, size=(12, 9), mode="bilinear", align_corners=True))
    (out,) = LatentUpscaleByFactorWAS().run(ctx, {"samples": latent}, "nearest", 1.25, "false")
    assert out["samples"].shape == (1, 4, 10, 8)   # round(7.5) = 8 (banker's rounding keeps 7.5 → 8)


def test_was_image_resize_rounds_a_resize_up_to_multiples_of_8(ctx):
    image = torch.rand(2, 10, 12, 3)
    (out,) = ImageResizeWAS().run(ctx, image, "resize", "false", "bilinear", 2.0, 17, 9)
    assert out.shape == (2, 16, 24, 3)
    (out,) = ImageResizeWAS().run(ctx, image, "rescale", "true", "nearest", 1.5, 1, 1)
    assert out.shape == (2, 15, 18, 3)


def test_text_o_appends_a_space(ctx):
    assert TextO().run(ctx, "a cat") == ("a cat ",)


def test_o_factor_nodes_round_sides_to_the_nearest_multiple_of_8(ctx):
    assert [nearest_multiple_of_8(v) for v in (8, 10, 12, 13, 67.5)] == [8, 8, 16, 16, 64]
    (out,) = LatentUpscaleFactorO().run(ctx, {"samples": torch.randn(1, 4, 16, 13)}, "nearest-exact", 1.25, 1.25,
                                        "disabled")
    assert out["samples"].shape == (1, 4, 24, 16)   # int(16.25)=16 → 16, int(20)=20 → 24
    (img,) = ImageScaleFactorO().run(ctx, torch.rand(1, 20, 30, 3), "bilinear", 1.25, 1.25, "enabled", "disabled")
    assert img.shape == (1, 24, 40, 3)              # 25 → 24, 37.5 → 40
    (img,) = ImageScaleFactorO().run(ctx, torch.rand(1, 20, 30, 3), "bilinear", 1.25, 1.25, "disabled", "disabled")
    assert img.shape == (1, 25, 37, 3)


@pytest.mark.parametrize("method,width,height,expected", [
    ("stretch", 20, 10, (10, 20)),
    ("keep proportion", 20, 20, (10, 20)),       # 16×32 → ratio min(20/32, 20/16) = 0.625
    ("fill / crop", 20, 20, (20, 20)),
    ("pad", 20, 20, (20, 20)),
    ("keep proportion", 0, 8, (8, 16)),
])
def test_image_resize_plus_sizes(ctx, method, width, height, expected):
    image = torch.rand(1, 16, 32, 3)
    out, out_w, out_h = ImageResizePlus().run(ctx, image, width, height, "nearest", method, "always", 0)
    assert (out.shape[1], out.shape[2]) == expected == (out_h, out_w)


def test_image_resize_plus_pads_with_black_and_honours_the_condition_and_multiple(ctx):
    image = torch.ones(1, 16, 32, 3)
    out, _, _ = ImageResizePlus().run(ctx, image, 20, 20, "nearest", "pad", "always", 0)
    assert out[0, :5].max() == 0 and out[0, 5:15].min() == 1 and out[0, 15:].max() == 0
    out, w, h = ImageResizePlus().run(ctx, image, 64, 64, "nearest", "stretch", "downscale if bigger", 0)
    assert out is image or torch.equal(out, image)
    out, w, h = ImageResizePlus().run(ctx, image, 30, 20, "bilinear", "stretch", "always", 8)
    assert (w, h) == (24, 16)


def test_cr_load_lora_passes_through_when_off_or_none():
    model, clip = object(), object()
    assert CRLoadLoRA().run(None, model, clip, "Off", "x.safetensors", 1.0, 1.0) == (model, clip, HELP_URL)
    assert CRLoadLoRA().run(None, model, clip, "On", "None", 1.0, 1.0) == (model, clip, HELP_URL)
    assert CRLoadLoRA().run(None, model, clip, "On", "x.safetensors", 0.0, 0.0) == (model, clip, HELP_URL)
    registry = NodeRegistry()
    registry.load_package("nodes")
    assert registry.get("CR Load LoRA").inputs["lora_name"].available(Paths("/nonexistent"))[0] == "None"


def test_preset_text_gives_the_default_preset():
    assert PresetText().run(None, "default negative") == ("worst quality",)


def test_cr_load_lora_when_on_patches_as_lora_loader_does(models_dir, tmp_path):
    from nodes.loaders import CheckpointLoaderSimple
    from nodes.lora import LoraLoader
    from nodes.models.builtin import BUILTIN_LORA

    paths = Paths(models_dir, tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    run_ctx = RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                         emit=lambda event, data: None, settings={})
    model, clip, _ = CheckpointLoaderSimple().run(run_ctx, "tiny-sd15.safetensors")
    ours = CRLoadLoRA().run(run_ctx, model, clip, "On", BUILTIN_LORA, 0.7, 0.3)
    reference = LoraLoader().run(run_ctx, model, clip, BUILTIN_LORA, 0.7, 0.3)
    assert ours[2] == HELP_URL
    for got, want, original in zip(ours[:2], reference, (model, clip)):
        assert got.patches and [(p.part, p.strength, p.source) for p in got.patches] == \
            [(p.part, p.strength, p.source) for p in want.patches]
        assert got is not original


def test_text_to_conditioning_is_clip_text_encode(models_dir, tmp_path):
    from nodes.conditioning_nodes import CLIPTextEncode
    from nodes.loaders import CheckpointLoaderSimple
    from nodes.packs.was_text import TextToConditioning

    paths = Paths(models_dir, tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    run_ctx = RunContext(node_id="1", prompt_id="test", paths=paths, interrupt=InterruptHandle(),
                         emit=lambda event, data: None, settings={})
    _, clip, _ = CheckpointLoaderSimple().run(run_ctx, "tiny-sd15.safetensors")
    (ours,) = TextToConditioning().run(run_ctx, clip, "a (red:1.2) circle")
    (reference,) = CLIPTextEncode().run(run_ctx, "a (red:1.2) circle", clip)
    assert torch.equal(ours[0].embeds, reference[0].embeds)
