"""Every sampler name lands where the exact solution says, on toy denoisers known in closed form."""

import math

import pytest
import torch

from nodes.sampling.noise import initial_noise
from nodes.sampling.samplers import SAMPLER_NAMES, sample, sampler_info
from nodes.sampling.schedule import ModelSampling, ksampler_sigmas

MS = ModelSampling()
MU, S0 = 0.4, 0.5
DETERMINISTIC = ["euler", "heun", "dpm_2", "lms", "dpmpp_2m", "deis", "ddim", "uni_pc", "uni_pc_bh2"]
STOCHASTIC = ["euler_ancestral", "dpm_2_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddpm", "lcm",
              "dpmpp_sde_gpu", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde_gpu"]


def gaussian_denoiser(x, sigma):
    """The exact denoiser for data ~ N(MU, S0^2): E[x0 | x] = MU + S0^2 / (S0^2 + sigma^2) * (x - MU)."""
    s = float(sigma)
    return MU + S0**2 / (S0**2 + s * s) * (x - MU)


def start(name, steps=30, shape=(1, 4, 8, 8), seed=0, scheduler="karras"):
    sigmas = ksampler_sigmas(MS, scheduler, steps,
                             discard_penultimate_sigma=sampler_info(name).discard_penultimate_sigma)
    x = MS.noise_scaling(sigmas[0], initial_noise(seed, shape), torch.zeros(shape))
    return x, sigmas


def test_every_required_name_is_offered():
    required = {"euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2m", "dpmpp_2m_sde",
                "dpmpp_sde", "dpmpp_3m_sde", "ddim", "uni_pc", "lcm", "deis", "ddpm"}
    assert required <= set(SAMPLER_NAMES)
    assert set(DETERMINISTIC + STOCHASTIC) == set(SAMPLER_NAMES)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_follow_the_probability_flow_ode(name):
    # Along the ODE, x - MU scales like sqrt(S0^2 + sigma^2): the end point is known exactly.
    x, sigmas = start(name)
    expected = MU + (x - MU) * S0 / math.sqrt(S0**2 + float(sigmas[0]) ** 2)
    out = sample(name, gaussian_denoiser, x, sigmas, seed=0)
    # First-order methods are ~0.1 off at 30 steps; the higher-order ones an order of magnitude closer.
    tolerance = 0.12 if name in ("euler", "ddim") else 0.01
    assert (out - expected).abs().max() < tolerance


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_samplers_reproduce_the_data_distribution(name):
    x, sigmas = start(name, steps=100, shape=(16, 4, 16, 16), seed=3)
    out = sample(name, gaussian_denoiser, x, sigmas, seed=3)
    assert out.mean().item() == pytest.approx(MU, abs=0.01)
    if name != "lcm":  # LCM re-noises the prediction, which is only exact for a consistency model
        assert out.std().item() == pytest.approx(S0, abs=0.03)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_point_mass_data_is_reached(name):
    target = torch.linspace(-1, 1, 256).reshape(1, 4, 8, 8)
    x, sigmas = start(name, steps=8)
    out = sample(name, lambda x, s: target, x, sigmas, seed=1)
    # uni_pc stops at sigma 0.001, as ComfyUI's does, so a trace of the noise remains.
    assert (out - target).abs().max() < (0.01 if name.startswith("uni_pc") else 1e-5)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_same_seed_same_result(name):
    x, sigmas = start(name, steps=6)
    a = sample(name, gaussian_denoiser, x, sigmas, seed=9)
    b = sample(name, gaussian_denoiser, x, sigmas, seed=9)
    assert torch.equal(a, b)


def test_euler_on_a_linear_model_is_the_hand_written_euler_loop():
    def model(x, sigma):
        return 0.3 * x + 0.1

    x0, sigmas = start("euler", steps=7, scheduler="normal")
    x = x0.clone()
    for i in range(7):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        d = (x - model(x, s)) / s
        x = x + d * (s_next - s)
    torch.testing.assert_close(sample("euler", model, x0, sigmas, seed=0), x, rtol=1e-5, atol=1e-5)


def test_euler_ancestral_noise_stream_is_comfyuis():
    # With a model that predicts 0, each step is x * sigma_down / sigma + noise * sigma_up,
    # the noise drawn from a CPU generator seeded with seed + 1.
    from nodes.sampling.coefficients import ancestral_step

    x0, sigmas = start("euler_ancestral", steps=5, scheduler="normal")
    generator = torch.Generator().manual_seed(43)
    x = x0.clone()
    for i in range(5):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        down, up = ancestral_step(s, s_next)
        if down == 0:
            x = torch.zeros_like(x)
        else:
            x = x + (x / s) * (down - s) + torch.randn(x.shape, generator=generator) * up
    out = sample("euler_ancestral", lambda x, s: torch.zeros_like(x), x0, sigmas, seed=42)
    torch.testing.assert_close(out, x, rtol=1e-5, atol=1e-5)


class Stop(Exception):
    pass


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_callback_sees_every_step_and_can_interrupt(name):
    x, sigmas = start(name, steps=6)
    seen = []
    sample(name, gaussian_denoiser, x, sigmas, seed=0, callback=lambda i, n, x, d: seen.append((i, n)))
    assert seen == [(i, len(sigmas) - 1) for i in range(len(sigmas) - 1)]

    def interrupt(i, n, x, d):
        if i == 2:
            raise Stop

    with pytest.raises(Stop):
        sample(name, gaussian_denoiser, x, sigmas, seed=0, callback=interrupt)


def test_start_and_end_step_windows_chain_into_the_full_run():
    from nodes.sampling.schedule import slice_steps

    x, sigmas = start("euler", steps=10, scheduler="normal")
    first = sample("euler", gaussian_denoiser, x, slice_steps(sigmas, last_step=4), seed=0)
    rest = sample("euler", gaussian_denoiser, first, slice_steps(sigmas, start_step=4), seed=0)
    whole = sample("euler", gaussian_denoiser, x, sigmas, seed=0)
    torch.testing.assert_close(rest, whole, rtol=1e-5, atol=1e-5)


def test_partial_denoise_starts_from_the_noised_latent():
    latent = torch.full((1, 4, 8, 8), MU)
    sigmas = ksampler_sigmas(MS, "normal", 10, denoise=0.5)
    assert float(sigmas[0]) < MS.sigma_max / 2
    x = MS.noise_scaling(sigmas[0], initial_noise(0, latent.shape), latent)
    out = sample("euler", lambda x, s: latent, x, sigmas, seed=0)
    torch.testing.assert_close(out, latent)


def test_unknown_sampler_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="euler_ancestral"):
        sample("nope", gaussian_denoiser, torch.zeros(1), torch.tensor([1.0, 0.0]), seed=0)


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_comfyuis_gpu_variants_of_the_sde_samplers_are_the_same_on_the_cpu(name):
    x, sigmas = start(name, steps=6)
    assert torch.equal(sampler_info(name).run(gaussian_denoiser, x, sigmas, 3, lambda *a: None),
                       sampler_info(name + "_gpu").run(gaussian_denoiser, x, sigmas, 3, lambda *a: None))
