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


def euler_ancestral_with(denoise, x, sigmas, seed, callback, eta: float = 1.0, s_noise: float = 1.0):
    """Euler ancestral with SamplerEulerAncestral's options (KSampler's euler_ancestral is eta = s_noise = 1)."""
    noise = StepNoise(seed, x)
    total = len(sigmas) - 1
    for i in range(total):
        s = float(sigmas[i])
        denoised = denoise(x, _sig(sigmas, i))
        sigma_down, sigma_up = ancestral_step(s, float(sigmas[i + 1]), eta)
        callback(i, total, x, denoised)
        if sigma_down == 0:
            x = denoised
            continue
        x = x + _d(x, s, denoised) * (sigma_down - s) + noise() * s_noise * sigma_up
    return x
