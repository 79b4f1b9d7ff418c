"""Quantiles of the Beta distribution, for ComfyUI's `beta` scheduler.

ComfyUI takes them from scipy; scipy is not one of our dependencies, so the
regularized incomplete beta function is evaluated here by its continued fraction
and inverted by bisection, both in float64 (accurate far below the 1/999 grid the
scheduler rounds to).
"""

from __future__ import annotations

import math

import numpy as np

_TINY = 1e-300


def _continued_fraction(x: np.ndarray, a: float, b: float, terms: int = 60) -> np.ndarray:
    """The continued fraction of I_x(a, b) (modified Lentz), converging for x < (a + 1) / (a + b + 2)."""

    def guard(v: np.ndarray) -> np.ndarray:
        return np.where(np.abs(v) < _TINY, _TINY, v)

    c = np.ones_like(x)
    d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0))
    h = d.copy()
    for m in range(1, terms + 1):
        even = m * (b - m) * x / ((a - 1.0 + 2 * m) * (a + 2 * m))
        d = 1.0 / guard(1.0 + even * d)
        c = guard(1.0 + even / c)
        h *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1.0 + 2 * m))
        d = 1.0 / guard(1.0 + odd * d)
        c = guard(1.0 + odd / c)
        h *= d * c
    return h


def regularized_incomplete_beta(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """I_x(a, b), the Beta(a, b) cumulative distribution function, elementwise."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    inner = (x > 0.0) & (x < 1.0)
    safe = np.where(inner, x, 0.5)
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    front = np.exp(a * np.log(safe) + b * np.log1p(-safe) - log_beta)
    direct = safe < (a + 1.0) / (a + b + 2.0)
    # The fraction converges on the lower side only; use I_x(a,b) = 1 - I_{1-x}(b,a) above it.
    low = front * _continued_fraction(safe, a, b) / a
    high = 1.0 - front * _continued_fraction(1.0 - safe, b, a) / b
    value = np.where(direct, low, high)
    return np.where(inner, value, np.where(x >= 1.0, 1.0, 0.0))


def beta_quantile(q: np.ndarray, a: float, b: float, iterations: int = 64) -> np.ndarray:
    """The inverse of I_x(a, b) in x, elementwise, by bisection (the CDF is monotone)."""
    q = np.asarray(q, dtype=np.float64)
    lo = np.zeros_like(q)
    hi = np.ones_like(q)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = regularized_incomplete_beta(mid, a, b) < q
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return np.where(q <= 0.0, 0.0, np.where(q >= 1.0, 1.0, 0.5 * (lo + hi)))
