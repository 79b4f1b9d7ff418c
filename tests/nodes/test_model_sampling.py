"""ModelSamplingDiscrete's tables and prediction types, RescaleCFG and CFGZeroStar, checked against ComfyUI's
formulas written out here, and as nodes on the tiny SD1.5 model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from nodes.model_sampling_nodes import CFGZeroStar, ModelSamplingDiscrete, RescaleCFG
from nodes.models.family import SD15
from nodes.models.handles import ModelHandle
from nodes.sampling.cfg import LCMDenoiser, X0Denoiser, unet_denoiser
from nodes.sampling.cfg_terms import CfgZeroStar, RescaledCfg
from nodes.sampling.schedule import (
    ZSNR_LAST_ALPHA_BAR,
    DistilledModelSampling,
    ModelSampling,
    ksampler_sigmas,
    model_sampling_for,
)

MS = ModelSampling()


class FakeUNet(torch.nn.Module):
    """Output = 0.5 * input + 0.3 * input² + mean of the text embedding: cond and uncond differ per pixel."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.timesteps: list[float] = []

    def forward(self, sample, timestep, encoder_hidden_states, **kwargs):
        self.timesteps.append(float(timestep[0]))
        bias = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return SimpleNamespace(sample=0.5 * sample + 0.3 * sample * sample + bias)


def embeds(value):
    return torch.full((1, 77, 8), float(value))


def eps_predictions(x, sigma, *biases):
    x_in = x / math.sqrt(sigma * sigma + 1.0)
    return [x - (0.5 * x_in + 0.3 * x_in * x_in + b) * sigma for b in biases]


def test_lcm_table_is_every_twentieth_timestep_ending_at_999():
    lcm = DistilledModelSampling()
    assert len(lcm.sigmas) == 50
    torch.testing.assert_close(lcm.sigmas, MS.sigmas[19::20])
    assert int(lcm.timestep(torch.tensor(lcm.sigma_max))) == 999
    assert int(lcm.timestep(torch.tensor(lcm.sigma_min))) == 19
    torch.testing.assert_close(lcm.sigma(torch.tensor(759.0)), MS.sigmas[759])
    # Between two distilled timesteps sigma is log-linear in the distilled index (ComfyUI's interpolation).
    between = math.exp(0.25 * math.log(MS.sigmas[739]) + 0.75 * math.log(MS.sigmas[759]))
    assert float(lcm.sigma(torch.tensor(754.0))) == pytest.approx(between, rel=1e-5)


def test_lcm_sgm_uniform_four_steps_start_at_999():
    sigmas = ksampler_sigmas(model_sampling_for("lcm"), "sgm_uniform", 4)
    assert len(sigmas) == 5 and float(sigmas[-1]) == 0.0
    assert float(sigmas[0]) == pytest.approx(float(MS.sigmas[999]), rel=1e-6)


def test_zsnr_table_shifts_sqrt_alpha_bar_to_end_at_zero():
    zsnr = ModelSampling(zsnr=True)
    root = (1.0 / (MS.sigmas.double() ** 2 + 1.0)).sqrt()
    expected = (root - root[-1]) * root[0] / (root[0] - root[-1])
    got = (1.0 / (zsnr.sigmas.double() ** 2 + 1.0)).sqrt()
    torch.testing.assert_close(got[:-1], expected[:-1], rtol=1e-5, atol=1e-7)
    assert zsnr.sigma_max == pytest.approx(math.sqrt((1 - ZSNR_LAST_ALPHA_BAR) / ZSNR_LAST_ALPHA_BAR), rel=1e-5)
    assert zsnr.sigma_min == pytest.approx(MS.sigma_min, rel=1e-5)
    assert zsnr.sigma_max > 4000 and zsnr.is_max_denoise(zsnr.sigma_max)


def test_unknown_prediction_type_is_refused():
    with pytest.raises(ValueError, match="prediction"):
        ModelSampling("flow")


def test_x0_denoiser_returns_the_model_output():
    x, sigma = torch.randn(1, 4, 8, 8), 2.0
    denoiser = unet_denoiser(FakeUNet(), ModelSampling("x0"), embeds(0.2))
    assert isinstance(denoiser, X0Denoiser)
    x_in = x / math.sqrt(5.0)
    torch.testing.assert_close(denoiser(x, torch.tensor(sigma)), 0.5 * x_in + 0.3 * x_in * x_in + 0.2)


def test_lcm_denoiser_applies_the_consistency_boundary_condition():
    unet, lcm = FakeUNet(), model_sampling_for("lcm")
    x, sigma = torch.randn(1, 4, 8, 8), float(lcm.sigmas[30])
    denoiser = unet_denoiser(unet, lcm, embeds(0.2))
    assert isinstance(denoiser, LCMDenoiser)
    denoised = denoiser(x, torch.tensor(sigma))
    assert unet.timesteps == [30 * 20 + 19]
    t = 619 * 10.0  # ComfyUI: the UNet's timestep scaled by 10, sigma_data 0.5
    c_skip, c_out = 0.25 / (t * t + 0.25), t / (t * t + 0.25) ** 0.5
    (x0,) = eps_predictions(x, sigma, 0.2)
    torch.testing.assert_close(denoised, c_out * x0 + c_skip * x)


def comfy_rescale_cfg(x, sigma, cond_pred, uncond_pred, cond_scale, multiplier):
    """ComfyUI's rescale_cfg as it is called: sampler_cfg_function(args), the result subtracted from x."""
    cond, uncond = x - cond_pred, x - uncond_pred
    xs = x / (sigma * sigma + 1.0)
    cond = ((xs - (x - cond)) * (sigma ** 2 + 1.0) ** 0.5) / sigma
    uncond = ((xs - (x - uncond)) * (sigma ** 2 + 1.0) ** 0.5) / sigma
    x_cfg = uncond + cond_scale * (cond - uncond)
    x_rescaled = x_cfg * (torch.std(cond, dim=(1, 2, 3), keepdim=True) / torch.std(x_cfg, dim=(1, 2, 3), keepdim=True))
    x_final = multiplier * x_rescaled + (1.0 - multiplier) * x_cfg
    return x - (x - (xs - x_final * sigma / (sigma * sigma + 1.0) ** 0.5))


@pytest.mark.parametrize("multiplier", [0.0, 0.7, 1.0])
def test_rescale_cfg_follows_comfyui(multiplier):
    x, sigma, cfg = torch.randn(2, 4, 8, 8), 3.0, 7.0
    denoiser = unet_denoiser(FakeUNet(), MS, embeds(0.3), embeds(-0.2), cfg, (RescaledCfg(multiplier),))
    cond, uncond = eps_predictions(x, sigma, 0.3, -0.2)
    expected = comfy_rescale_cfg(x, sigma, cond, uncond, cfg, multiplier)
    torch.testing.assert_close(denoiser(x, torch.tensor(sigma)), expected, rtol=1e-5, atol=1e-5)
    if multiplier == 0.0:
        torch.testing.assert_close(expected, uncond + cfg * (cond - uncond), rtol=1e-5, atol=1e-5)


def test_cfg_zero_star_follows_comfyui_and_leaves_cfg_one_alone():
    x, sigma, cfg = torch.randn(2, 4, 8, 8), 3.0, 6.0
    denoiser = unet_denoiser(FakeUNet(), MS, embeds(0.3), embeds(-0.2), cfg, (CfgZeroStar(),))
    cond, uncond = eps_predictions(x, sigma, 0.3, -0.2)
    positive, negative = (x - cond).reshape(2, -1), (x - uncond).reshape(2, -1)
    alpha = (positive * negative).sum(1, keepdim=True) / ((negative ** 2).sum(1, keepdim=True) + 1e-8)
    alpha = alpha.view(2, 1, 1, 1)
    plain = uncond + cfg * (cond - uncond)
    expected = plain + uncond * (alpha - 1.0) + cfg * uncond * (1.0 - alpha)
    torch.testing.assert_close(denoiser(x, torch.tensor(sigma)), expected, rtol=1e-5, atol=1e-5)
    single = unet_denoiser(FakeUNet(), MS, embeds(0.3), None, 1.0, (CfgZeroStar(), RescaledCfg(0.7)))
    torch.testing.assert_close(single(x, torch.tensor(sigma)), cond)


def test_nodes_give_new_handles_and_keep_the_cfg_function_first():
    model = ModelHandle(FakeUNet(), SD15, MS, "tiny", post_cfg=("pag",))
    (lcm,) = ModelSamplingDiscrete().run(None, model, "lcm", False)
    assert lcm.model_sampling.prediction == "lcm" and isinstance(lcm.model_sampling, DistilledModelSampling)
    assert model.model_sampling is MS and lcm.unet is model.unet
    (v,) = ModelSamplingDiscrete().run(None, model, "v_prediction", True)
    assert v.model_sampling.prediction == "v_prediction" and v.model_sampling.zsnr
    (zero,) = CFGZeroStar().run(None, model)
    (first,) = RescaleCFG().run(None, zero, 0.5)
    (again,) = RescaleCFG().run(None, first, 0.7)
    assert again.post_cfg == (RescaledCfg(0.7), "pag", CfgZeroStar())
    assert model.post_cfg == ("pag",)

