"""Samplers written as k-diffusion loops, for names diffusers cannot run on an arbitrary schedule.

Each follows ComfyUI's loop for the same name, including what it does on the last
step (most jump straight to the prediction when the next sigma is 0). Every function
has the signature `(denoise, x, sigmas, seed, callback) -> x`; x is in k-diffusion
form and `callback(i, total, x, denoised)` runs once per step and may raise to stop.
"""

from __future__ import annotations

import math

import torch

from .coefficients import ancestral_step, deis_coefficients, lms_coefficients
from .noise import StepNoise


def _d(x: torch.Tensor, sigma: float, denoised: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE derivative dx/dsigma."""
    return (x - denoised) / sigma


def _sig(sigmas: torch.Tensor, i: int) -> torch.Tensor:
    return sigmas[i].reshape(())


def heun(denoise, x, sigmas, seed, callback):
    """Heun's method (Karras et al. 2022, Alg. 2 without churn); an Euler step when the next sigma is 0."""
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoise(x, _sig(sigmas, i))
        callback(i, total, x, denoised)
        d = _d(x, s, denoised)
        if s_next == 0:
            x = x + d * (s_next - s)
            continue
        x_2 = x + d * (s_next - s)
        d_2 = _d(x_2, s_next, denoise(x_2, _sig(sigmas, i + 1)))
        x = x + (d + d_2) / 2 * (s_next - s)
    return x


def _log_midpoint(a: float, b: float) -> float:
    return math.exp(0.5 * (math.log(a) + math.log(b)))


def dpm_2(denoise, x, sigmas, seed, callback):
    """DPM-Solver-2 flavoured Heun: the derivative is re-evaluated at the log-midpoint sigma."""
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoise(x, _sig(sigmas, i))
        callback(i, total, x, denoised)
        d = _d(x, s, denoised)
        if s_next == 0:
            x = x + d * (s_next - s)
            continue
        s_mid = _log_midpoint(s, s_next)
        x_2 = x + d * (s_mid - s)
        d_2 = _d(x_2, s_mid, denoise(x_2, torch.tensor(s_mid)))
        x = x + d_2 * (s_next - s)
    return x


def dpm_2_ancestral(denoise, x, sigmas, seed, callback):
    """dpm_2 down to sigma_down, then fresh noise of size sigma_up (eta = 1)."""
    noise = StepNoise(seed, x)
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoise(x, _sig(sigmas, i))
        sigma_down, sigma_up = ancestral_step(s, s_next)
        callback(i, total, x, denoised)
        d = _d(x, s, denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - s)
            continue
        s_mid = _log_midpoint(s, sigma_down)
        x_2 = x + d * (s_mid - s)
        d_2 = _d(x_2, s_mid, denoise(x_2, torch.tensor(s_mid)))
        x = x + d_2 * (sigma_down - s)
        x = x + noise() * sigma_up
    return x


def lms(denoise, x, sigmas, seed, callback, order: int = 4):
    """Linear multistep over the last four derivatives; the last step to sigma 0 returns the prediction."""
    nodes = sigmas.detach().cpu().double().numpy()
    history: list[torch.Tensor] = []
    total = len(sigmas) - 1
    for i in range(total):
        denoised = denoise(x, _sig(sigmas, i))
        history = (history + [_d(x, float(sigmas[i]), denoised)])[-order:]
        callback(i, total, x, denoised)
        if float(sigmas[i + 1]) == 0:
            x = denoised
            continue
        coeffs = lms_coefficients(nodes, i, min(i + 1, order))
        x = x + sum(c * d for c, d in zip(coeffs, reversed(history)))
    return x


def deis(denoise, x, sigmas, seed, callback, max_order: int = 3):
    """DEIS ("tab", third order) as ComfyUI runs it; Euler on the first step and on any step to sigma 0."""
    table = deis_coefficients(sigmas, max_order)
    history: list[torch.Tensor] = []
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoise(x, _sig(sigmas, i))
        callback(i, total, x, denoised)
        d = _d(x, s, denoised)
        order = 1 if s_next <= 0 else min(max_order, i + 1)
        if order == 1:
            x = x + (s_next - s) * d
        else:
            coeffs = table[i]
            x = x + coeffs[0] * d + sum(c * h for c, h in zip(coeffs[1:], reversed(history)))
        history = (history + [d])[-(max_order - 1):]
    return x


def lcm(denoise, x, sigmas, seed, callback):
    """Latent consistency sampling: jump to the prediction, then re-noise it to the next sigma."""
    noise = StepNoise(seed, x)
    total = len(sigmas) - 1
    for i in range(total):
        denoised = denoise(x, _sig(sigmas, i))
        callback(i, total, x, denoised)
        x = denoised
        if float(sigmas[i + 1]) > 0:
            x = x + noise() * float(sigmas[i + 1])
    return x


def ddpm(denoise, x, sigmas, seed, callback):
    """Ancestral DDPM posterior steps, taken in the variance-preserving scale and mapped back."""
    noise = StepNoise(seed, x)
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoise(x, _sig(sigmas, i))
        callback(i, total, x, denoised)
        eps = (x - denoised) / s
        x_vp = x / math.sqrt(1.0 + s * s)
        abar, abar_prev = 1 / (s * s + 1), 1 / (s_next * s_next + 1)
        alpha = abar / abar_prev
        x = (1.0 / alpha) ** 0.5 * (x_vp - (1 - alpha) * eps / (1 - abar) ** 0.5)
        if s_next > 0:
            x = x + ((1 - alpha) * (1.0 - abar_prev) / (1.0 - abar)) ** 0.5 * noise()
            x = x * math.sqrt(1.0 + s_next * s_next)
    return x


def dpmpp_sde(denoise, x, sigmas, seed, callback, eta: float = 1.0, r: float = 0.5):
    """DPM-Solver++ (stochastic, midpoint r = 1/2) in half-log-SNR time lambda = -log(sigma)."""
    noise = StepNoise(seed, x)
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoise(x, _sig(sigmas, i))
        callback(i, total, x, denoised)
        if s_next == 0:
            x = denoised
            continue
        lam_s, lam_t = -math.log(s), -math.log(s_next)
        h = lam_t - lam_s
        s_1 = math.exp(-(lam_s + r * h))
        # Step 1: to the midpoint s_1, with its share of fresh noise.
        sd, su = ancestral_step(s, s_1, eta)
        h_ = -math.log(sd) - lam_s
        x_2 = math.exp(-h_) * x - math.expm1(-h_) * denoised + noise() * su
        denoised_2 = denoise(x_2, torch.tensor(s_1))
        # Step 2: the full step with the midpoint-corrected prediction.
        sd, su = ancestral_step(s, s_next, eta)
        h_ = -math.log(sd) - lam_s
        fac = 1 / (2 * r)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = math.exp(-h_) * x - math.expm1(-h_) * denoised_d + noise() * su
    return x


def dpmpp_3m_sde(denoise, x, sigmas, seed, callback, eta: float = 1.0):
    """DPM-Solver++(3M) SDE: third-order multistep with fresh noise each step."""
    noise = StepNoise(seed, x)
    d_1 = d_2 = None
    h_1 = h_2 = None
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoise(x, _sig(sigmas, i))
        callback(i, total, x, denoised)
        h = None
        if s_next == 0:
            x = denoised
        else:
            h = math.log(s) - math.log(s_next)
            h_eta = h * (eta + 1)
            x = s_next / s * math.exp(-h * eta) * x - math.expm1(-h_eta) * denoised
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if h_2 is not None:
                assert h_1 is not None and d_1 is not None and d_2 is not None  # set a step before h_2
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - d_1) / r0
                d1_1 = (d_1 - d_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                x = x + phi_2 * (denoised - d_1) / (h_1 / h)
            if eta > 0:
                x = x + noise() * s_next * math.sqrt(-math.expm1(-2 * h * eta))
        d_1, d_2 = denoised, d_1
        h_1, h_2 = h, h_1
    return x
