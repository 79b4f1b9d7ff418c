"""The DPM-Solver++ SDE samplers, with ComfyUI's Brownian-tree noise and its sampler parameters.

Same signature as `k_steps` (`(denoise, x, sigmas, seed, callback, **options) -> x`); the keyword
options are the ones SamplerDPMPP_SDE / SamplerDPMPP_2M_SDE / SamplerDPMPP_3M_SDE expose, and their
defaults are what KSampler runs. Step coefficients are computed on float32 0-d tensors, as ComfyUI
computes them, so the Brownian tree is queried at exactly ComfyUI's sigmas (the midpoint of dpmpp_sde
included).
"""

from __future__ import annotations

import torch

from .brownian import BrownianNoise
from .coefficients import ancestral_step


def _lam(sigma: torch.Tensor) -> torch.Tensor:
    """Half log-SNR of an epsilon/v model at sigma: -log(sigma)."""
    return sigma.log().neg()


def dpmpp_sde(denoise, x, sigmas, seed, callback, eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5):
    """DPM-Solver++ (stochastic): a midpoint evaluation at lambda_s + r * h, two noise draws per step."""
    sigmas = sigmas.float()
    noise = BrownianNoise(seed, x, sigmas)
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(x, s)
        callback(i, total, x, denoised)
        if float(s_next) == 0:
            x = denoised
            continue
        lam_s, lam_t = _lam(s), _lam(s_next)
        h = lam_t - lam_s
        s_1 = (lam_s + r * h).neg().exp()
        sd, su = ancestral_step(float(s), float(s_1), eta)
        h_ = -torch.tensor(sd, dtype=torch.float32).log() - lam_s
        x_2 = (-h_).exp() * x - (-h_).expm1() * denoised
        if eta > 0 and s_noise > 0:
            x_2 = x_2 + noise(s, s_1) * s_noise * su
        denoised_2 = denoise(x_2, s_1)
        sd, su = ancestral_step(float(s), float(s_next), eta)
        h_ = -torch.tensor(sd, dtype=torch.float32).log() - lam_s
        fac = 1 / (2 * r)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (-h_).exp() * x - (-h_).expm1() * denoised_d
        if eta > 0 and s_noise > 0:
            x = x + noise(s, s_next) * s_noise * su
    return x


def dpmpp_2m_sde(denoise, x, sigmas, seed, callback, eta: float = 1.0, s_noise: float = 1.0,
                 solver_type: str = "midpoint"):
    """DPM-Solver++(2M) SDE; `solver_type` picks the midpoint or Heun form of the second-order correction."""
    if solver_type not in ("midpoint", "heun"):
        raise ValueError(f"solver_type must be 'midpoint' or 'heun', got {solver_type!r}")
    sigmas = sigmas.float()
    noise = BrownianNoise(seed, x, sigmas)
    old_denoised, h_last = None, None
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(x, s)
        callback(i, total, x, denoised)
        h = None
        if float(s_next) == 0:
            x = denoised
        else:
            h = _lam(s_next) - _lam(s)
            h_eta = h * (eta + 1)
            x = s_next / s * (-h * eta).exp() * x - (-h_eta).expm1() * denoised
            if old_denoised is not None and h_last is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h_eta).expm1().neg() / (-h_eta) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x - 0.5 * (-h_eta).expm1() * (1 / r) * (denoised - old_denoised)
            if eta > 0 and s_noise > 0:
                x = x + noise(s, s_next) * s_next * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        old_denoised, h_last = denoised, h
    return x


def dpmpp_3m_sde(denoise, x, sigmas, seed, callback, eta: float = 1.0, s_noise: float = 1.0):
    """DPM-Solver++(3M) SDE: third-order multistep once two earlier steps are known."""
    sigmas = sigmas.float()
    noise = BrownianNoise(seed, x, sigmas)
    d_1 = d_2 = None
    h_1 = h_2 = None
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(x, s)
        callback(i, total, x, denoised)
        h = None
        if float(s_next) == 0:
            x = denoised
        else:
            h = _lam(s_next) - _lam(s)
            h_eta = h * (eta + 1)
            x = s_next / s * (-h * eta).exp() * x - (-h_eta).expm1() * denoised
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if h_2 is not None and h_1 is not None and d_1 is not None and d_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - d_1) / r0
                d1_1 = (d_1 - d_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None and d_1 is not None:
                x = x + phi_2 * (denoised - d_1) / (h_1 / h)
            if eta > 0 and s_noise > 0:
                x = x + noise(s, s_next) * s_next * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        d_1, d_2 = denoised, d_1
        h_1, h_2 = h, h_1
    return x
