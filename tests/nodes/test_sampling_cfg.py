"""The UNet seen as a denoiser: input scaling, timestep, CFG, the cfg == 1 shortcut, and inpaint masking."""

import math
from types import SimpleNamespace

import pytest
import torch

from nodes.sampling.cfg import Cond, EpsilonDenoiser, MaskedDenoiser, VDenoiser, latent_mask, unet_denoiser
from nodes.sampling.noise import initial_noise
from nodes.sampling.samplers import sample
from nodes.sampling.schedule import ModelSampling, ksampler_sigmas

MS = ModelSampling()


class FakeUNet(torch.nn.Module):
    """Output = 0.5 * input + mean of the text embedding, per batch item; records every call."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def forward(self, sample, timestep, encoder_hidden_states, **kwargs):
        self.calls.append(SimpleNamespace(sample=sample.clone(), timestep=timestep.clone(),
                                          embeds=encoder_hidden_states.clone(), kwargs=kwargs))
        bias = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return SimpleNamespace(sample=0.5 * sample + bias)


def embeds(value, tokens=77):
    return torch.full((1, tokens, 8), float(value))


def test_epsilon_denoiser_scales_input_and_uses_comfyuis_timestep():
    unet = FakeUNet()
    x, sigma = torch.randn(1, 4, 8, 8), torch.tensor(3.0)
    denoised = EpsilonDenoiser(unet, MS, embeds(0.2))(x, sigma)
    (call,) = unet.calls
    x_in = x / math.sqrt(10.0)
    torch.testing.assert_close(call.sample, x_in)
    assert float(call.timestep[0]) == float(MS.timestep(sigma))
    torch.testing.assert_close(denoised, x - (0.5 * x_in + 0.2) * 3.0)


def test_cfg_combines_cond_and_uncond_from_one_batched_call():
    unet = FakeUNet()
    x, sigma, cfg = torch.randn(1, 4, 8, 8), torch.tensor(2.0), 7.5
    denoised = EpsilonDenoiser(unet, MS, embeds(0.3), embeds(-0.1), cfg=cfg)(x, sigma)
    assert len(unet.calls) == 1 and unet.calls[0].sample.shape[0] == 2
    x_in = x / math.sqrt(5.0)
    cond, uncond = x - (0.5 * x_in + 0.3) * 2.0, x - (0.5 * x_in - 0.1) * 2.0
    torch.testing.assert_close(denoised, uncond + cfg * (cond - uncond))


def test_cfg_one_calls_the_model_once_per_step_without_uncond():
    unet = FakeUNet()
    denoiser = EpsilonDenoiser(unet, MS, embeds(0.3), embeds(-0.1), cfg=1.0)
    sigmas = ksampler_sigmas(MS, "normal", 5)
    x = MS.noise_scaling(sigmas[0], initial_noise(0, (1, 4, 8, 8)), torch.zeros(1, 4, 8, 8))
    sample("euler", denoiser, x, sigmas, seed=0)
    assert len(unet.calls) == 5
    assert all(call.sample.shape[0] == 1 for call in unet.calls)


def test_cfg_other_than_one_needs_a_negative():
    with pytest.raises(ValueError, match="negative"):
        EpsilonDenoiser(FakeUNet(), MS, embeds(0.3), None, cfg=5.0)


def test_v_prediction_denoiser():
    unet = FakeUNet()
    x, s = torch.randn(1, 4, 8, 8), 1.5
    denoised = VDenoiser(unet, ModelSampling("v_prediction"), embeds(0.0))(x, torch.tensor(s))
    v = 0.5 * x / math.sqrt(s * s + 1)
    torch.testing.assert_close(denoised, x / (s * s + 1) - v * s / math.sqrt(s * s + 1))
    assert isinstance(unet_denoiser(unet, ModelSampling("v_prediction"), embeds(0.0)), VDenoiser)


def test_prompts_of_different_lengths_are_repeated_to_a_common_length():
    unet = FakeUNet()
    EpsilonDenoiser(unet, MS, embeds(0.3, tokens=154), embeds(-0.1, tokens=77), cfg=2.0)(
        torch.zeros(2, 4, 8, 8), torch.tensor(1.0))
    (call,) = unet.calls
    assert call.embeds.shape == (4, 154, 8)
    assert torch.all(call.embeds[2:] == -0.1)


def test_extra_unet_inputs_are_batched_alongside():
    unet = FakeUNet()
    pos = Cond(embeds(0.3), {"text_embeds": torch.ones(1, 4)})
    neg = Cond(embeds(0.0), {"text_embeds": torch.zeros(1, 4)})
    EpsilonDenoiser(unet, MS, pos, neg, cfg=3.0)(torch.zeros(1, 4, 8, 8), torch.tensor(1.0))
    added = unet.calls[0].kwargs["added_cond_kwargs"]["text_embeds"]
    assert torch.equal(added, torch.tensor([[1.0] * 4, [0.0] * 4]))


def test_inpainting_keeps_the_unmasked_region():
    latent = torch.linspace(-1, 1, 256).reshape(1, 4, 8, 8)
    mask = torch.zeros(1, 4, 8, 8)
    mask[..., :4] = 1.0
    noise = initial_noise(5, latent.shape)
    seen = []

    def inner(x, sigma):
        seen.append((x.clone(), float(sigma)))
        return torch.zeros_like(x)

    denoiser = MaskedDenoiser(inner, latent, noise, mask)
    sigmas = ksampler_sigmas(MS, "karras", 6)
    x = MS.noise_scaling(sigmas[0], noise, latent)
    out = sample("euler", denoiser, x, sigmas, seed=5)
    keep = mask == 0
    torch.testing.assert_close(out[keep], latent[keep])
    assert torch.all(out[~keep].abs() < 1e-5)
    for x_seen, s in seen:
        torch.testing.assert_close(x_seen[keep], (latent + noise * s)[keep])


def test_latent_mask_resizes_and_broadcasts():
    mask = torch.zeros(64, 64)
    mask[:, 32:] = 1
    resized = latent_mask(mask, (2, 4, 8, 8))
    assert resized.shape == (2, 4, 8, 8)
    assert torch.all(resized[..., :3] == 0) and torch.all(resized[..., 5:] == 1)
