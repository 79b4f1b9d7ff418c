"""Self-Attention Guidance: the blur and the attention mask as worked out by hand, the term as ComfyUI's
formula, and the model exactly as before once sampling is done."""

import math

import pytest
import torch

from nodes.model_patches import SelfAttentionGuidance
from nodes.models.family import SD15
from nodes.models.handles import ModelHandle
from nodes.models.patching import model_patches_applied
from nodes.models.sag import attention_mask, attention_probabilities, degraded_prediction, gaussian_blur_2d
from nodes.models.tiny import tiny_modules
from nodes.sampling import ModelSampling, unet_denoiser


@pytest.fixture(scope="module")
def model():
    unet = tiny_modules(SD15, 5)["unet"]
    return ModelHandle(unet, SD15, ModelSampling("epsilon"), "tiny")


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 16, 16, generator=generator) * 3.0
    return x, torch.randn(1, 77, 32, generator=generator), torch.randn(1, 77, 32, generator=generator)


def test_gaussian_blur_spreads_a_point_into_the_normalised_kernel():
    sigma = 1.5
    weights = [math.exp(-i * i / (2 * sigma * sigma)) for i in range(-4, 5)]
    kernel = torch.tensor(weights) / sum(weights)
    image = torch.zeros(1, 2, 13, 13)
    image[0, 1, 6, 6] = 1.0
    blurred = gaussian_blur_2d(image, 9, sigma)
    assert blurred.shape == image.shape
    assert torch.allclose(blurred[0, 1, 2:11, 2:11], torch.outer(kernel, kernel), atol=1e-7)
    assert blurred[0, 0].abs().max() == 0 and float(blurred[0, 1, 0].abs().max()) == 0.0
    constant = torch.full((1, 1, 6, 6), 0.7)  # reflect padding: a constant stays constant at the borders
    assert torch.allclose(gaussian_blur_2d(constant, 9, 2.0), constant, atol=1e-6)
    assert torch.equal(gaussian_blur_2d(image, 9, 0.0), image)


def test_attention_mask_marks_the_tokens_attended_more_than_one_token_s_worth():
    # 8×8 latent, 2×2 tokens: each token covers a 4×4 quadrant. Head 0 sends every query to token 0
    # (top left), head 1 to token 3 (bottom right): averaged, each gets 2 > 1; tokens 1 and 2 get 0.
    attention = torch.zeros(1, 2, 4, 4)
    attention[0, 0, :, 0] = 1.0
    attention[0, 1, :, 3] = 1.0
    mask = attention_mask(attention, (8, 8))
    expected = torch.zeros(8, 8)
    expected[:4, :4] = 1.0
    expected[4:, 4:] = 1.0
    assert mask.shape == (1, 1, 8, 8) and torch.equal(mask[0, 0], expected)
    uniform = torch.full((1, 2, 4, 4), 0.25)  # every token gets exactly 1: not above the threshold
    assert attention_mask(uniform, (8, 8)).sum() == 0


def test_degraded_prediction_blurs_only_under_the_mask():
    attention = torch.zeros(1, 1, 4, 4)
    attention[0, 0, :, 1] = 1.0  # token 1: the top-right quadrant
    denoised = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    degraded = degraded_prediction(denoised, attention, 1.0)
    blurred = gaussian_blur_2d(denoised, 9, 1.0)
    assert torch.equal(degraded[..., :4, 4:], blurred[..., :4, 4:])
    assert torch.equal(degraded[..., 4:, :], denoised[..., 4:, :]) and torch.equal(degraded[..., :4, :4],
                                                                                   denoised[..., :4, :4])


def test_attention_probabilities_match_diffusers_own_scores(model):
    attention = model.unet.mid_block.attentions[0].transformer_blocks[0].attn1
    hidden = torch.randn(2, 16, attention.to_q.in_features)
    with torch.no_grad():
        ours = attention_probabilities(attention, hidden)
        query = attention.head_to_batch_dim(attention.to_q(hidden))
        key = attention.head_to_batch_dim(attention.to_k(hidden))
        theirs = attention.get_attention_scores(query, key).reshape(2, attention.heads, 16, 16)
    assert torch.allclose(ours, theirs, atol=1e-6)


def sag_by_hand(denoiser, x, sigma, cfg_result, uncond, attention, scale, blur_sigma):
    degraded = degraded_prediction(uncond, attention, blur_sigma)
    return cfg_result + (degraded - denoiser.negative_denoised(degraded + x - uncond, sigma)) * scale


@pytest.mark.parametrize("cfg", [5.0, 1.0])
def test_sag_adds_comfyui_s_term_and_leaves_the_model_as_it_was(model, inputs, cfg):
    x, positive, negative = inputs
    sigma = torch.tensor(2.0)
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    patched = SelfAttentionGuidance().run(None, model, 0.8, 2.0)[0]
    recorder, term = patched.hooks[-1], patched.post_cfg[-1]
    with torch.no_grad():
        plain_denoiser = unet_denoiser(model.unet, model.model_sampling, positive, negative, cfg)
        plain = plain_denoiser(x, sigma)
        uncond = plain_denoiser.negative_denoised(x, sigma)
        with model_patches_applied(patched) as unet:
            guided = unet_denoiser(unet, model.model_sampling, positive, negative, cfg, patched.post_cfg)(x, sigma)
            recorder.attention = None
            plain_denoiser.negative_denoised(x, sigma)  # the negative side alone: its attention map
            attention = recorder.attention
            plain_denoiser.positive_denoised(x, sigma)  # a positive-only pass (PAG's) records nothing
            assert recorder.attention is attention
        expected = sag_by_hand(plain_denoiser, x, sigma, plain, uncond, attention, term.scale, term.blur_sigma)
    assert 0 < float(attention_mask(attention, (16, 16)).mean()) < 1  # some of the latent blurred, not all
    assert torch.allclose(guided, expected, atol=1e-5)
    assert not torch.allclose(guided, plain, atol=1e-4)
    assert torch.equal(unet_denoiser(model.unet, model.model_sampling, positive, negative, cfg)(x, sigma), plain)
    assert all(torch.equal(v, before[k]) for k, v in model.unet.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.unet.modules())


def test_sag_at_scale_zero_or_on_a_tiny_latent_changes_nothing(model, inputs):
    x, positive, negative = inputs
    sigma = torch.tensor(2.0)
    for patched, latent in ((SelfAttentionGuidance().run(None, model, 0.0, 2.0)[0], x),
                            (SelfAttentionGuidance().run(None, model, 1.0, 2.0)[0], x[..., :4, :4])):
        with torch.no_grad(), model_patches_applied(patched) as unet:
            plain = unet_denoiser(unet, model.model_sampling, positive, negative, 5.0)(latent, sigma)
            guided = unet_denoiser(unet, model.model_sampling, positive, negative, 5.0, patched.post_cfg)(latent, sigma)
        assert torch.equal(guided, plain)
