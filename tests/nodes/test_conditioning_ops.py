"""The conditioning toolbox (ConditioningAverage, Concat, SetAreaPercentage, SetAreaStrength, SetMask,
SetTimestepRange): what each node sets, how the sampler weighs it (ComfyUI's get_area_and_mult),
and `/object_info` of every issue-19 vision/conditioning node against ComfyUI's declarations."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes import clip_vision, conditioning_ops, style_model, unclip
from nodes.conditioning.regions import covers_whole, entry_weight, resolve_area
from nodes.conditioning.value import CondEntry
from nodes.conditioning_ops import (
    ConditioningAverage,
    ConditioningConcat,
    ConditioningSetAreaPercentage,
    ConditioningSetAreaStrength,
    ConditioningSetMask,
    ConditioningSetTimestepRange,
)
from nodes.guidance import guided_denoiser
from nodes.models.family import SD15
from nodes.models.handles import ModelHandle
from nodes.sampling import ModelSampling
from nodes.sampling.control import percent_to_sigma
from tests.nodes.comfy_vision_object_info import COMFY_VISION_NODES

CTX = RunContext(node_id="1", prompt_id="test", paths=Paths("/nonexistent"), interrupt=InterruptHandle(),
                 emit=lambda event, data: None, settings={})
NUMBER_OPTIONS = ("default", "min", "max", "step")


def entry(values, tokens=3, width=4, pooled=None) -> CondEntry:
    embeds = torch.tensor(values, dtype=torch.float32).reshape(1, tokens, width)
    return CondEntry(embeds, None if pooled is None else torch.tensor([pooled], dtype=torch.float32))


# --- declarations ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    for module in (clip_vision, conditioning_ops, style_model, unclip):
        registry.register_module(module)
    return registry.object_info()


@pytest.mark.parametrize("class_type", sorted(COMFY_VISION_NODES))
def test_object_info_matches_comfyui(object_info, class_type):
    expected, info = COMFY_VISION_NODES[class_type], object_info[class_type]
    declared = info["input"]["required"]
    assert list(declared) == [name for name, _, _ in expected["required"]]
    assert info["input_order"]["required"] == [name for name, _, _ in expected["required"]]
    assert "optional" not in info["input"] or not info["input"]["optional"]
    for name, comfy_type, options in expected["required"]:
        ours = declared[name]
        if comfy_type == "FILES":
            assert isinstance(ours[0], list), name
            continue
        assert ours[0] == comfy_type, name
        ours_options = ours[1] if len(ours) > 1 else {}
        assert {k: ours_options[k] for k in NUMBER_OPTIONS if k in ours_options} == options, name
    assert list(zip(info["output"], info["output_name"])) == expected["outputs"]
    assert (info["category"], info["display_name"]) == (expected["category"], expected["display_name"])
    assert info["output_node"] is False


# --- average and concat ---------------------------------------------------------------------------

def test_average_blends_tokens_and_pooled_outputs_by_the_to_strength():
    to = entry(torch.arange(12.0).tolist(), pooled=[1.0, 2.0])
    source = entry(torch.full((12,), 10.0).tolist(), pooled=[3.0, 4.0])
    (out,) = ConditioningAverage().run(CTX, (to,), (source,), 0.25)[0]
    assert torch.allclose(out.embeds, to.embeds * 0.25 + 10.0 * 0.75)
    assert torch.allclose(out.pooled, torch.tensor([[2.5, 3.5]]))


def test_average_cuts_or_zero_pads_the_from_tokens_to_the_to_length():
    to = entry([1.0] * 12)
    longer = CondEntry(torch.full((1, 5, 4), 2.0))
    shorter = CondEntry(torch.full((1, 2, 4), 2.0))
    (cut,) = ConditioningAverage().run(CTX, (to,), (longer,), 0.5)[0]
    (padded,) = ConditioningAverage().run(CTX, (to,), (shorter,), 0.5)[0]
    assert torch.allclose(cut.embeds, torch.full((1, 3, 4), 1.5))
    assert torch.allclose(padded.embeds[0, :2], torch.full((2, 4), 1.5))
    assert torch.allclose(padded.embeds[0, 2], torch.full((4,), 0.5))


def test_average_takes_the_from_pooled_output_when_the_to_side_has_none():
    (out,) = ConditioningAverage().run(CTX, (entry([1.0] * 12),), (entry([0.0] * 12, pooled=[7.0, 8.0]),), 0.5)[0]
    assert torch.equal(out.pooled, torch.tensor([[7.0, 8.0]]))


def test_concat_appends_the_first_from_entrys_tokens_to_every_entry():
    a, b = entry([1.0] * 12), entry([2.0] * 12)
    source = (CondEntry(torch.full((1, 2, 4), 9.0)), CondEntry(torch.zeros(1, 7, 4)))
    out = ConditioningConcat().run(CTX, (a, b), source)[0]
    assert [tuple(e.embeds.shape) for e in out] == [(1, 5, 4), (1, 5, 4)]
    assert torch.equal(out[1].embeds[0, 3:], torch.full((2, 4), 9.0)) and torch.equal(out[1].embeds[0, :3], b.embeds[0])


# --- where and how strongly -----------------------------------------------------------------------

def test_area_percentage_resolves_to_latent_pixels_as_comfyui_rounds():
    (out,) = ConditioningSetAreaPercentage().run(CTX, (entry([0.0] * 12),), 0.5, 0.26, 0.25, 0.5, 2.0)[0]
    assert out.area_fraction == (0.26, 0.5, 0.5, 0.25) and out.strength == 2.0
    # height 0.26 of 10 → 3 (round), width 0.5 of 16 → 8, y 0.5 of 10 → 5, x 0.25 of 16 → 4
    assert resolve_area(out, 10, 16) == (3, 8, 5, 4)
    assert resolve_area(out.with_(area_fraction=(0.0, 0.0, 0.0, 0.0)), 10, 16) == (1, 1, 0, 0)


def test_an_area_fades_in_over_8_latent_pixels_on_its_inner_edges():
    sampling = ModelSampling()
    x = torch.zeros(1, 4, 32, 32)
    placed = entry_weight(CondEntry(torch.zeros(1, 1, 4), area=(16, 32, 16, 0), strength=2.0), x, 1.0, sampling)
    region, mult = placed
    assert region[2] == slice(16, 32) and region[3] == slice(0, 32)
    column = mult[0, 0, :, 5]
    assert torch.allclose(column[:8], 2.0 * torch.arange(1, 9) / 8) and torch.allclose(column[8:], torch.tensor(2.0))
    assert torch.allclose(mult[0, 0, 10, :], torch.tensor(2.0)), "edges on the image border are not faded"


def test_area_strength_sets_the_strength_only():
    (out,) = ConditioningSetAreaStrength().run(CTX, (entry([0.0] * 12).with_(area=(8, 8, 0, 0)),), 3.5)[0]
    assert out.strength == 3.5 and out.area == (8, 8, 0, 0)


def test_a_mask_weighs_the_prediction_by_its_resized_values_times_both_strengths():
    mask = torch.zeros(16, 16)
    mask[4:12, 8:16] = 1.0
    (out,) = ConditioningSetMask().run(CTX, (entry([0.0] * 12).with_(strength=2.0),), mask, 0.5, "default")[0]
    assert out.mask.shape == (1, 16, 16) and not out.set_area_to_bounds and not covers_whole(out)
    region, mult = entry_weight(out, torch.zeros(2, 4, 8, 8), 1.0, ModelSampling())
    expected = torch.nn.functional.interpolate(mask[None, None], size=(8, 8), mode="bilinear")[0, 0] * 0.5 * 2.0
    assert region[2] == slice(0, 8) and mult.shape == (2, 4, 8, 8)
    assert torch.allclose(mult[1, 3], expected)


def test_mask_bounds_evaluate_the_box_around_the_mask_at_least_8_pixels_wide():
    mask = torch.zeros(1, 32, 32)
    mask[0, 20:23, 2:30] = 1.0
    (out,) = ConditioningSetMask().run(CTX, (entry([0.0] * 12),), mask, 1.0, "mask bounds")[0]
    assert resolve_area(out, 32, 32, out.mask) == (8, 28, 20, 2)
    region, mult = entry_weight(out, torch.zeros(1, 4, 32, 32), 1.0, ModelSampling())
    assert (region[2], region[3]) == (slice(20, 28), slice(2, 30))
    assert torch.equal(mult[0, 0], mask[0, 20:28, 2:30])
    empty = out.with_(mask=torch.zeros(1, 32, 32))
    assert resolve_area(empty, 32, 32, empty.mask) == (8, 8, 0, 0)


def test_timestep_range_limits_an_entry_to_its_part_of_the_schedule():
    (out,) = ConditioningSetTimestepRange().run(CTX, (entry([0.0] * 12),), 0.25, 0.5)[0]
    assert (out.start_percent, out.end_percent) == (0.25, 0.5) and not covers_whole(out)
    sampling = ModelSampling()
    start, end = percent_to_sigma(sampling, 0.25), percent_to_sigma(sampling, 0.5)
    x = torch.zeros(1, 4, 8, 8)
    assert entry_weight(out, x, start * 1.01, sampling) is None
    assert entry_weight(out, x, start, sampling) is not None and entry_weight(out, x, end, sampling) is not None
    assert entry_weight(out, x, end * 0.99, sampling) is None


# --- the sampler's blend --------------------------------------------------------------------------

class EmbeddingMeanUNet(nn.Module):
    """A stand-in UNet whose epsilon is the mean of the prompt tokens, everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, sample, timestep, encoder_hidden_states, **kwargs):
        eps = encoder_hidden_states.mean(dim=(1, 2)).reshape(-1, 1, 1, 1).expand_as(sample)
        return SimpleNamespace(sample=eps + self.anchor)


def stub_model() -> ModelHandle:
    return ModelHandle(EmbeddingMeanUNet(), SD15, ModelSampling(), "stub")


def test_masked_entries_blend_by_their_weights_and_cfg_1_gives_the_positive_side():
    model, sigma = stub_model(), 2.0
    x = torch.zeros(1, 4, 8, 8)
    left = torch.zeros(1, 8, 8)
    left[:, :, :4] = 1.0
    a = CondEntry(torch.full((1, 2, 4), 1.0), mask=left, mask_strength=3.0)
    b = CondEntry(torch.full((1, 2, 4), 5.0))
    denoiser = guided_denoiser(model, (a, b), (b,), 1.0, x.shape)
    out = denoiser(x, torch.tensor(sigma))
    # denoised = x - eps * sigma; left half: (3·(−1·2) + 1·(−5·2)) / 4, right half: −10 from b alone
    assert torch.allclose(out[0, 0, :, :4], torch.tensor((3 * -2.0 + -10.0) / 4))
    assert torch.allclose(out[0, 0, :, 4:], torch.tensor(-10.0))


def test_an_entry_outside_its_timestep_range_leaves_the_others_to_predict():
    model, x = stub_model(), torch.zeros(1, 4, 8, 8)
    early = CondEntry(torch.full((1, 2, 4), 1.0), start_percent=0.0, end_percent=0.5)
    late = CondEntry(torch.full((1, 2, 4), 5.0), start_percent=0.5, end_percent=1.0)
    denoiser = guided_denoiser(model, (early, late), (late,), 1.0, x.shape)
    high = percent_to_sigma(model.model_sampling, 0.1)
    low = percent_to_sigma(model.model_sampling, 0.9)
    assert torch.allclose(denoiser(x, torch.tensor(high)), torch.tensor(-1.0 * high), rtol=1e-4)
    assert torch.allclose(denoiser(x, torch.tensor(low)), torch.tensor(-5.0 * low), rtol=1e-4)


def test_the_last_area_node_decides_between_pixels_and_fractions():
    from nodes.conditioning_nodes import ConditioningSetArea

    base = (entry([0.0] * 12),)
    (fraction_then_pixels,) = ConditioningSetArea().run(
        CTX, ConditioningSetAreaPercentage().run(CTX, base, 0.5, 0.5, 0.0, 0.0, 1.0)[0], 64, 128, 8, 16, 1.0)[0]
    assert resolve_area(fraction_then_pixels, 32, 32) == (16, 8, 2, 1)
    (pixels_then_fraction,) = ConditioningSetAreaPercentage().run(
        CTX, (fraction_then_pixels,), 0.5, 0.25, 0.0, 0.5, 1.0)[0]
    assert resolve_area(pixels_then_fraction, 32, 32) == (8, 16, 16, 0)


def test_masks_and_image_embeddings_count_in_an_entrys_bytes():
    plain = entry([0.0] * 12)
    masked = plain.with_(mask=torch.zeros(1, 8, 8))
    assert masked.nbytes == plain.nbytes + 8 * 8 * 4


def test_conditioning_average_answers_to_its_early_name_with_a_trailing_space():
    """Early ComfyUI saved the class as "ConditioningAverage " (three of cubiq's shared workflows)."""
    from engine.config import EngineConfig, build_registry

    registry = build_registry(EngineConfig(extension_dirs=[]))
    assert registry.get("ConditioningAverage ").class_type == "ConditioningAverage"
    assert "ConditioningAverage " not in registry.object_info()
