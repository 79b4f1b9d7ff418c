"""Step coefficients of the linear multistep samplers (lms, deis), computed as ComfyUI defines them."""

from __future__ import annotations

import math

import numpy as np
import torch


def _lagrange_basis(nodes, j: int, points):
    """The j-th Lagrange basis polynomial over `nodes`, evaluated at `points`."""
    value = 1.0
    for k, node in enumerate(nodes):
        if k != j:
            value = value * (points - node) / (nodes[j] - node)
    return value


def lms_coefficients(sigmas: np.ndarray, i: int, order: int) -> list[float]:
    """Weights of the last `order` derivatives for the step sigmas[i] -> sigmas[i + 1].

    Each weight integrates a Lagrange basis polynomial (nodes sigmas[i], sigmas[i-1], ...)
    over the step. ComfyUI integrates numerically; the integrand is a polynomial of
    degree < 4, which Gauss-Legendre quadrature with 4 points integrates exactly.
    """
    a, b = float(sigmas[i]), float(sigmas[i + 1])
    nodes = [float(sigmas[i - k]) for k in range(order)]
    roots, weights = np.polynomial.legendre.leggauss(4)
    points = 0.5 * (b - a) * roots + 0.5 * (a + b)
    return [float(0.5 * (b - a) * np.sum(weights * _lagrange_basis(nodes, j, points))) for j in range(order)]


def _vp_fit(sigma_min: float = 0.002, sigma_max: float = 80.0, eps_s: float = 1e-3):
    """The VP-SDE (beta_min, beta_d) whose sigma spans [sigma_min, sigma_max] over t in [eps_s, 1]
    (DEIS's EDM defaults)."""
    log_min = torch.log(torch.tensor(sigma_min) ** 2 + 1)
    log_max = torch.log(torch.tensor(sigma_max) ** 2 + 1)
    beta_d = 2 * (log_min / eps_s - log_max) / (eps_s - 1)
    beta_min = log_max - 0.5 * beta_d
    return beta_min, beta_d


def deis_coefficients(sigmas: torch.Tensor, max_order: int = 3, points: int = 10_000) -> list[list[torch.Tensor]]:
    """DEIS ("tab" variant) weights per step, as ComfyUI's `deis` sampler uses them.

    Sigmas are mapped to the time of a fitted VP-SDE; each weight is a Riemann sum
    (`points` samples) of the exponential-integrator kernel times a Lagrange basis
    polynomial over the previous step times. Steps ending at sigma 0 get no weights:
    the sampler takes an Euler step there.
    """
    beta_min, beta_d = _vp_fit()
    ts = ((beta_min**2 + 2 * beta_d * torch.log(sigmas.float().cpu() ** 2 + 1)).sqrt() - beta_min) / beta_d
    beta_0, beta_1 = beta_min, beta_d + beta_min
    table: list[list[torch.Tensor]] = []
    for i in range(len(ts) - 1):
        order = min(i + 1, max_order)
        if order == 1 or float(sigmas[i + 1]) <= 0:
            table.append([])
            continue
        taus = torch.linspace(float(ts[i]), float(ts[i + 1]), points)
        dtau = (ts[i + 1] - ts[i]) / points
        alpha = torch.exp(-0.5 * taus**2 * (beta_1 - beta_0) - taus * beta_0)
        # -0.5 * d(log alpha)/dtau / sqrt(alpha (1 - alpha)), with the derivative in closed form.
        kernel = 0.5 * (taus * (beta_1 - beta_0) + beta_0) / torch.sqrt(alpha * (1 - alpha))
        nodes = [ts[i - k] for k in range(order)]
        table.append([torch.sum(kernel * _lagrange_basis(nodes, j, taus)) * dtau for j in range(order)])
    return table


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """Split a step into a deterministic move down to sigma_down and fresh noise of size sigma_up."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * math.sqrt(sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2))
    return math.sqrt(sigma_to**2 - sigma_up**2), sigma_up
