"""The discrete noise schedule of SD1/SDXL models and ComfyUI's scheduler names.

Every number here follows ComfyUI's arithmetic (dtypes included) so that a
workflow's sigmas, and therefore its images, are the ones ComfyUI produces.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .beta_quantile import beta_quantile

PREDICTIONS = ("epsilon", "v_prediction", "x0", "lcm")
# The last alphas_cumprod of a zero-terminal-SNR table (ComfyUI's constant: a sigma of about 4518.8, not infinity).
ZSNR_LAST_ALPHA_BAR = 4.8973451890853435e-08


class ModelSampling:
    """The 1000-step discrete schedule of a model and the sigma <-> timestep maps.

    Betas are `linspace(sqrt(start), sqrt(end), 1000)^2` in float64 (as ComfyUI
    builds them); the sigma table and its logarithm are stored in float32.
    """

    def __init__(
        self,
        prediction: str = "epsilon",
        linear_start: float = 0.00085,
        linear_end: float = 0.012,
        num_timesteps: int = 1000,
        zsnr: bool = False,
    ):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.prediction = prediction
        self.zsnr = zsnr
        betas = torch.linspace(linear_start**0.5, linear_end**0.5, num_timesteps, dtype=torch.float64) ** 2
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1.0 - alphas_cumprod) / alphas_cumprod) ** 0.5
        if zsnr:
            sigmas = zero_terminal_snr(sigmas)
            alphas_cumprod = 1.0 / (sigmas * sigmas + 1.0)
        self.alphas_cumprod = alphas_cumprod.float()
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        """Sigma at a (fractional) timestep: log-sigma interpolated linearly between integer steps."""
        t = torch.as_tensor(timestep).float().clamp(0, len(self.sigmas) - 1)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()

    def timestep(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """The timestep the model is called with: ComfyUI takes the integer step whose log-sigma is nearest."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        distances = sigma.log().reshape(-1) - self.log_sigmas[:, None]
        return distances.abs().argmin(dim=0).view(sigma.shape)

    def noise_scaling(self, sigma: float, noise: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """The starting point of sampling at `sigma`.

        From the top of the schedule ComfyUI scales the noise by sqrt(1 + sigma^2)
        (the variance of a noised latent); otherwise by sigma. The latent is added in both cases.
        """
        if self.is_max_denoise(sigma):
            return noise * math.sqrt(1.0 + float(sigma) ** 2) + latent
        return noise * float(sigma) + latent

    def is_max_denoise(self, sigma: float) -> bool:
        return math.isclose(self.sigma_max, float(sigma), rel_tol=1e-5) or float(sigma) > self.sigma_max


class DistilledModelSampling(ModelSampling):
    """LCM's table: the 50 timesteps 19, 39, ..., 999 its distillation saw, as ComfyUI's
    ModelSamplingDiscrete "lcm" builds it; timesteps still count in the 1000-step scale."""

    ORIGINAL_TIMESTEPS = 50

    def __init__(self, prediction: str = "lcm", zsnr: bool = False):
        super().__init__(prediction, zsnr=zsnr)
        full = len(self.sigmas)
        self.skip_steps = full // self.ORIGINAL_TIMESTEPS
        picked = [full - 1 - i * self.skip_steps for i in range(self.ORIGINAL_TIMESTEPS)][::-1]
        self.sigmas = self.sigmas[picked].clone()
        self.log_sigmas = self.sigmas.log()
        self.alphas_cumprod = 1.0 / (self.sigmas * self.sigmas + 1.0)

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        t = (torch.as_tensor(timestep).float() - (self.skip_steps - 1)) / self.skip_steps
        return super().sigma(t)

    def timestep(self, sigma: torch.Tensor | float) -> torch.Tensor:
        return super().timestep(sigma) * self.skip_steps + (self.skip_steps - 1)


def zero_terminal_snr(sigmas: torch.Tensor) -> torch.Tensor:
    """Lin et al.'s rescale: sqrt(alpha_bar) shifted to end at 0 and scaled to keep its start, as ComfyUI's
    `rescale_zero_terminal_snr_sigmas` (whose last alpha_bar is a small constant, so the last sigma is finite)."""
    root = (1.0 / (sigmas * sigmas + 1.0)).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    alpha_bar = root**2
    alpha_bar[-1] = ZSNR_LAST_ALPHA_BAR
    return ((1.0 - alpha_bar) / alpha_bar) ** 0.5


def model_sampling_for(prediction: str, zsnr: bool = False) -> ModelSampling:
    """The table ComfyUI's ModelSamplingDiscrete gives a prediction type (the distilled one for LCM)."""
    if prediction == "lcm":
        return DistilledModelSampling(zsnr=zsnr)
    return ModelSampling(prediction, zsnr=zsnr)


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def normal(ms: ModelSampling, steps: int, sgm: bool = False) -> torch.Tensor:
    """Timesteps evenly spaced from the top to the bottom of the table, mapped to sigmas."""
    start, end = ms.timestep(ms.sigma_max), ms.timestep(ms.sigma_min)
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
        return _append_zero(ms.sigma(timesteps))
    if math.isclose(float(ms.sigma(end)), 0, abs_tol=1e-5):
        # A zero-terminal-SNR table already ends at sigma 0: one more point, no appended zero.
        return ms.sigma(torch.linspace(start, end, steps + 1))
    return _append_zero(ms.sigma(torch.linspace(start, end, steps)))


def karras(ms: ModelSampling, steps: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): sigma^(1/rho) evenly spaced between sigma_max and sigma_min."""
    ramp = torch.linspace(0, 1, steps)
    min_inv_rho, max_inv_rho = ms.sigma_min ** (1 / rho), ms.sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(ms: ModelSampling, steps: int) -> torch.Tensor:
    """Log-sigma evenly spaced between sigma_max and sigma_min."""
    return _append_zero(torch.linspace(math.log(ms.sigma_max), math.log(ms.sigma_min), steps).exp())


def sgm_uniform(ms: ModelSampling, steps: int) -> torch.Tensor:
    """Like `normal` over steps + 1 timesteps, dropping the last."""
    return normal(ms, steps, sgm=True)


def simple(ms: ModelSampling, steps: int) -> torch.Tensor:
    """Every (1000 / steps)-th sigma of the table, from the top."""
    stride = len(ms.sigmas) / steps
    picked = [float(ms.sigmas[-(1 + int(i * stride))]) for i in range(steps)]
    return torch.tensor(picked + [0.0], dtype=torch.float32)


def ddim_uniform(ms: ModelSampling, steps: int) -> torch.Tensor:
    """Table sigmas at a fixed integer stride from timestep 1 upwards (DDIM's spacing), then 0."""
    if math.isclose(float(ms.sigmas[1]), 0, abs_tol=1e-5):
        steps, picked = steps + 1, []
    else:
        picked = [0.0]
    stride = max(len(ms.sigmas) // steps, 1)
    picked += [float(ms.sigmas[t]) for t in range(1, len(ms.sigmas), stride)]
    return torch.tensor(picked[::-1], dtype=torch.float32)


def beta(ms: ModelSampling, steps: int, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    """Timesteps at Beta(0.6, 0.6) quantiles, rounded to the table, repeats dropped."""
    last = len(ms.sigmas) - 1
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    timesteps = np.rint(beta_quantile(quantiles, alpha, beta_) * last)
    picked, previous = [], None
    for t in timesteps:
        if t != previous:
            picked.append(float(ms.sigmas[int(t)]))
        previous = t
    return torch.tensor(picked + [0.0], dtype=torch.float32)


SCHEDULERS: dict[str, Callable[[ModelSampling, int], torch.Tensor]] = {
    "normal": normal,
    "karras": karras,
    "exponential": exponential,
    "sgm_uniform": sgm_uniform,
    "simple": simple,
    "ddim_uniform": ddim_uniform,
    "beta": beta,
}
SCHEDULER_NAMES = tuple(SCHEDULERS)


def scheduler_sigmas(ms: ModelSampling, scheduler: str, steps: int) -> torch.Tensor:
    """The float32 sigmas (steps + 1 values, ending in 0) that a scheduler name gives."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; expected one of {', '.join(SCHEDULER_NAMES)}")
    return SCHEDULERS[scheduler](ms, steps).float()


def ksampler_sigmas(
    ms: ModelSampling,
    scheduler: str,
    steps: int,
    denoise: float = 1.0,
    discard_penultimate_sigma: bool = False,
) -> torch.Tensor:
    """The sigmas KSampler runs: partial denoise keeps the tail of a longer schedule.

    With denoise < 1 ComfyUI builds int(steps / denoise) steps and keeps the last
    steps + 1 sigmas. Some samplers (dpm_2, dpm_2_ancestral, uni_pc) ask for one
    more step and drop the second-to-last sigma, so the final step is a big one.
    """

    def build(n: int) -> torch.Tensor:
        if not discard_penultimate_sigma:
            return scheduler_sigmas(ms, scheduler, n)
        sigmas = scheduler_sigmas(ms, scheduler, n + 1)
        return torch.cat([sigmas[:-2], sigmas[-1:]])

    if denoise > 0.9999:
        return build(steps)
    if denoise <= 0.0:
        return torch.zeros(0, dtype=torch.float32)
    return build(int(steps / denoise))[-(steps + 1):]


def slice_steps(
    sigmas: torch.Tensor,
    start_step: int | None = None,
    last_step: int | None = None,
    force_full_denoise: bool = False,
) -> torch.Tensor | None:
    """KSamplerAdvanced's window onto a schedule; None when it leaves nothing to run.

    Ending early keeps sigmas[:last_step + 1] and, when full denoise is forced,
    sets the final sigma to 0. A start at or past the last step means "return the
    latent unchanged", which the caller sees as None.
    """
    sigmas = sigmas.clone()
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[: last_step + 1]
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step >= len(sigmas) - 1:
            return None
        sigmas = sigmas[start_step:]
    return sigmas
