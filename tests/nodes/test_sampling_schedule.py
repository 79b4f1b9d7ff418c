"""Sigma schedules equal ComfyUI's numbers; expected values are derived here from the formulas."""

import math

import numpy as np
import pytest
import torch

from nodes.sampling.schedule import (
    SCHEDULER_NAMES,
    ModelSampling,
    ksampler_sigmas,
    scheduler_sigmas,
    slice_steps,
)

MS = ModelSampling()


def reference_table() -> np.ndarray:
    """sigma_t = sqrt((1 - abar_t) / abar_t) for betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2, in float64."""
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000) ** 2
    abar = np.cumprod(1 - betas)
    return np.sqrt((1 - abar) / abar)


def test_table_ends():
    assert MS.sigma_min == pytest.approx(0.0291672, abs=1e-6)
    assert MS.sigma_max == pytest.approx(14.614642, abs=1e-5)
    np.testing.assert_allclose(MS.sigmas.numpy(), reference_table(), rtol=1e-6)


def test_normal_8_steps_matches_comfyui():
    expected = [14.61464, 6.67800, 3.52206, 2.06064, 1.27683, 0.79126, 0.43967, 0.02917, 0]
    np.testing.assert_allclose(scheduler_sigmas(MS, "normal", 8).numpy(), expected, atol=1e-5)


def test_normal_is_log_linear_interpolation_at_even_timesteps():
    log_table = np.log(reference_table())
    for steps in (3, 20):
        ts = np.linspace(999, 0, steps)
        expected = np.exp(np.interp(ts, np.arange(1000), log_table))
        got = scheduler_sigmas(MS, "normal", steps).numpy()
        assert len(got) == steps + 1 and got[-1] == 0
        np.testing.assert_allclose(got[:-1], expected, rtol=2e-6)


def test_sgm_uniform_is_normal_over_one_more_point_without_the_last():
    log_table = np.log(reference_table())
    ts = np.linspace(999, 0, 11)[:-1]
    expected = np.exp(np.interp(ts, np.arange(1000), log_table))
    np.testing.assert_allclose(scheduler_sigmas(MS, "sgm_uniform", 10).numpy()[:-1], expected, rtol=2e-6)


def test_karras_closed_form():
    lo, hi, rho, n = reference_table()[0], reference_table()[-1], 7.0, 10
    expected = [(hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho for i in range(n)]
    np.testing.assert_allclose(scheduler_sigmas(MS, "karras", n).numpy(), expected + [0], rtol=1e-5)


def test_exponential_is_geometric():
    lo, hi = reference_table()[0], reference_table()[-1]
    expected = np.geomspace(hi, lo, 7)
    np.testing.assert_allclose(scheduler_sigmas(MS, "exponential", 7).numpy(), list(expected) + [0], rtol=1e-5)


def test_simple_takes_every_kth_table_entry_from_the_top():
    table = reference_table()
    expected = [table[999 - int(i * 1000 / 8)] for i in range(8)] + [0]
    np.testing.assert_allclose(scheduler_sigmas(MS, "simple", 8).numpy(), expected, rtol=1e-6)


def test_ddim_uniform_strides_from_timestep_one():
    table = reference_table()
    expected = [table[t] for t in range(1, 1000, 100)][::-1] + [0]
    np.testing.assert_allclose(scheduler_sigmas(MS, "ddim_uniform", 10).numpy(), expected, rtol=1e-6)


def test_beta_uses_beta_quantiles():
    import scipy.stats as scipy_stats  # the reference implementation (a test dependency)

    table = reference_table()
    ts = np.rint(scipy_stats.beta.ppf(1 - np.linspace(0, 1, 12, endpoint=False), 0.6, 0.6) * 999)
    expected = [table[int(t)] for i, t in enumerate(ts) if i == 0 or t != ts[i - 1]] + [0]
    np.testing.assert_allclose(scheduler_sigmas(MS, "beta", 12).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_every_scheduler_descends_to_zero(name):
    sigmas = scheduler_sigmas(MS, name, 9)
    assert sigmas.dtype == torch.float32 and sigmas[-1] == 0
    assert torch.all(sigmas[1:] < sigmas[:-1])


def test_unknown_scheduler_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="karras"):
        scheduler_sigmas(MS, "bogus", 5)


def test_sigma_interpolates_log_sigma_between_steps_and_timestep_is_the_nearest_step():
    table = reference_table()
    torch.testing.assert_close(MS.sigma(torch.tensor([0.0, 500.0, 999.0])).double(),
                               torch.tensor(table[[0, 500, 999]]), rtol=1e-6, atol=0)
    between = MS.sigma(torch.tensor([0.25])).double()  # a quarter of the way from step 0 to 1, in log-sigma
    torch.testing.assert_close(between, torch.tensor([table[0] ** 0.75 * table[1] ** 0.25]), rtol=1e-6, atol=0)
    sigmas = torch.tensor([14.0, 3.5, 0.5, 0.05])
    assert torch.equal(MS.timestep(sigmas), (MS.log_sigmas[:, None] - sigmas.log()).abs().argmin(0))
    assert int(MS.timestep(torch.tensor(MS.sigma_max))) == 999


def test_partial_denoise_keeps_the_tail_of_a_longer_schedule():
    full = scheduler_sigmas(MS, "normal", int(10 / 0.6))
    assert torch.equal(ksampler_sigmas(MS, "normal", 10, denoise=0.6), full[-11:])
    assert torch.equal(ksampler_sigmas(MS, "normal", 10, denoise=1.0), scheduler_sigmas(MS, "normal", 10))
    assert len(ksampler_sigmas(MS, "normal", 10, denoise=0.0)) == 0


def test_discarding_the_penultimate_sigma():
    longer = scheduler_sigmas(MS, "karras", 6)
    got = ksampler_sigmas(MS, "karras", 5, discard_penultimate_sigma=True)
    assert torch.equal(got, torch.cat([longer[:-2], longer[-1:]]))


def test_start_and_end_step_slicing():
    sigmas = scheduler_sigmas(MS, "normal", 10)
    assert torch.equal(slice_steps(sigmas, start_step=3), sigmas[3:])
    leftover = slice_steps(sigmas, last_step=6)
    assert torch.equal(leftover, sigmas[:7]) and leftover[-1] > 0
    full = slice_steps(sigmas, start_step=2, last_step=6, force_full_denoise=True)
    assert torch.equal(full[:-1], sigmas[2:6]) and full[-1] == 0
    assert slice_steps(sigmas, start_step=10) is None
    assert torch.equal(slice_steps(sigmas, last_step=10_000, force_full_denoise=True), sigmas)
    assert sigmas[6] > 0  # the caller's schedule is not modified


def test_starting_point_scaling():
    noise, latent = torch.ones(2), torch.full((2,), 0.5)
    top = MS.noise_scaling(MS.sigma_max, noise, latent)
    torch.testing.assert_close(top, 0.5 + torch.full((2,), math.sqrt(1 + MS.sigma_max**2)))
    torch.testing.assert_close(MS.noise_scaling(2.0, noise, latent), torch.full((2,), 2.5))
