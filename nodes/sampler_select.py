"""Custom-sampling building blocks: SAMPLER objects (KSamplerSelect and the samplers with parameters),
SIGMAS schedules (BasicScheduler and the parametric schedulers) and SIGMAS surgery (split, flip).

A SAMPLER is a `SamplerChoice`: a sampler name plus the keyword options its loop takes; its defaults are
what KSampler runs, so a default-valued sampler node gives KSampler's image.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import MODEL, Choice, Float, Int, Link
from nodes.sampling import SAMPLER_NAMES, SCHEDULER_NAMES, ksampler_sigmas, sampler_info
from nodes.sampling.k_steps import euler_ancestral_with, lms
from nodes.sampling.lcm_upscale import UPSCALE_METHODS, lcm_upscale
from nodes.sampling.samplers import SamplerFn
from nodes.sampling.schedule import beta as beta_schedule

SAMPLER = "SAMPLER"
SIGMAS = "SIGMAS"
SIGMA_MAX, SIGMA_MIN = 14.614642, 0.0291675  # ComfyUI's defaults: SD1's table ends


@dataclass(frozen=True)
class SamplerChoice:
    """A sampler name and the options its loop is called with (empty: KSampler's defaults)."""

    name: str
    options: dict = field(default_factory=dict)

    def loop(self) -> SamplerFn:
        if self.name == "euler_ancestral" and self.options:
            return functools.partial(euler_ancestral_with, **self.options)
        if self.name == "lms" and self.options:
            return functools.partial(lms, **self.options)
        if self.name == "lcm_upscale":
            return functools.partial(lcm_upscale, **self.options)
        run = sampler_info(self.name).run
        return functools.partial(run, **self.options) if self.options else run


def _sampler_float(default: float, maximum: float = 100.0) -> Float:
    return Float(default, min=0.0, max=maximum, step=0.01, round=False)


@node("KSamplerSelect", category="sampling/samplers", outputs=[Out(SAMPLER)])
class KSamplerSelect:
    """A sampler by KSampler's name, with its default options."""

    sampler_name = Choice(SAMPLER_NAMES)

    def run(self, ctx: RunContext, sampler_name) -> tuple:
        return (SamplerChoice(sampler_name),)


@node("SamplerEulerAncestral", category="sampling/samplers", outputs=[Out(SAMPLER)])
class SamplerEulerAncestral:
    """Euler ancestral with its noise amount (eta) and noise scale."""

    eta = _sampler_float(1.0)
    s_noise = _sampler_float(1.0)

    def run(self, ctx: RunContext, eta, s_noise) -> tuple:
        options = {} if (eta, s_noise) == (1.0, 1.0) else {"eta": eta, "s_noise": s_noise}
        return (SamplerChoice("euler_ancestral", options),)


@node("SamplerLMS", category="sampling/samplers", outputs=[Out(SAMPLER)])
class SamplerLMS:
    """Linear multistep of a chosen order."""

    order = Int(4, min=1, max=100)

    def run(self, ctx: RunContext, order) -> tuple:
        return (SamplerChoice("lms", {"order": order}),)


NOISE_DEVICES = ["gpu", "cpu"]  # the Brownian tree always lives on the CPU here (ComfyUI's "cpu")


@node("SamplerDPMPP_3M_SDE", category="sampling/samplers", outputs=[Out(SAMPLER)])
class SamplerDPMPP_3M_SDE:
    """DPM-Solver++(3M) SDE with its noise amount and scale."""

    eta = _sampler_float(1.0)
    s_noise = _sampler_float(1.0)
    noise_device = Choice(NOISE_DEVICES)

    def run(self, ctx: RunContext, eta, s_noise, noise_device) -> tuple:
        return (SamplerChoice("dpmpp_3m_sde", {"eta": eta, "s_noise": s_noise}),)


@node("SamplerDPMPP_2M_SDE", category="sampling/samplers", outputs=[Out(SAMPLER)])
class SamplerDPMPP_2M_SDE:
    """DPM-Solver++(2M) SDE, midpoint or Heun correction."""

    solver_type = Choice(["midpoint", "heun"])
    eta = _sampler_float(1.0)
    s_noise = _sampler_float(1.0)
    noise_device = Choice(NOISE_DEVICES)

    def run(self, ctx: RunContext, solver_type, eta, s_noise, noise_device) -> tuple:
        return (SamplerChoice("dpmpp_2m_sde", {"eta": eta, "s_noise": s_noise, "solver_type": solver_type}),)


@node("SamplerDPMPP_SDE", category="sampling/samplers", outputs=[Out(SAMPLER)])
class SamplerDPMPP_SDE:
    """DPM-Solver++ SDE with its midpoint ratio r."""

    eta = _sampler_float(1.0)
    s_noise = _sampler_float(1.0)
    r = _sampler_float(0.5)
    noise_device = Choice(NOISE_DEVICES)

    def run(self, ctx: RunContext, eta, s_noise, r, noise_device) -> tuple:
        return (SamplerChoice("dpmpp_sde", {"eta": eta, "s_noise": s_noise, "r": r}),)


@node("SamplerLCMUpscale", category="sampling/custom_sampling/samplers", outputs=[Out(SAMPLER)])
class SamplerLCMUpscale:
    """LCM that enlarges the latent by `scale_ratio` over its first `scale_steps` steps (-1: about half)."""

    scale_ratio = Float(1.0, min=0.1, max=20.0, step=0.01)
    scale_steps = Int(-1, min=-1, max=1000, step=1)
    upscale_method = Choice(list(UPSCALE_METHODS))

    def run(self, ctx: RunContext, scale_ratio, scale_steps, upscale_method) -> tuple:
        steps = None if scale_steps < 0 else scale_steps
        return (SamplerChoice("lcm_upscale", {"total_upscale": scale_ratio, "upscale_steps": steps,
                                              "upscale_method": upscale_method}),)


@node("BasicScheduler", category="sampling/schedulers", outputs=[Out(SIGMAS)])
class BasicScheduler:
    """KSampler's schedule for a scheduler name, steps and denoise."""

    model = Link(MODEL)
    scheduler = Choice(SCHEDULER_NAMES)
    steps = Int(20, min=1, max=10_000)
    denoise = Float(1.0, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, model, scheduler, steps, denoise) -> tuple:
        return (ksampler_sigmas(model.model_sampling, scheduler, steps, denoise),)


def _sigma_range() -> tuple[Float, Float]:
    return (Float(SIGMA_MAX, min=0.0, max=5000.0, step=0.01, round=False),
            Float(SIGMA_MIN, min=0.0, max=5000.0, step=0.01, round=False))


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas.float(), sigmas.new_zeros([1]).float()])


@node("KarrasScheduler", category="sampling/schedulers", outputs=[Out(SIGMAS)])
class KarrasScheduler:
    """Karras et al.'s schedule between given ends."""

    steps = Int(20, min=1, max=10_000)
    sigma_max, sigma_min = _sigma_range()
    rho = Float(7.0, min=0.0, max=100.0, step=0.01, round=False)

    def run(self, ctx: RunContext, steps, sigma_max, sigma_min, rho) -> tuple:
        ramp = torch.linspace(0, 1, steps)
        lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
        return (_append_zero((hi + ramp * (lo - hi)) ** rho),)


@node("ExponentialScheduler", category="sampling/schedulers", outputs=[Out(SIGMAS)])
class ExponentialScheduler:
    """Log-sigma evenly spaced between given ends."""

    steps = Int(20, min=1, max=10_000)
    sigma_max, sigma_min = _sigma_range()

    def run(self, ctx: RunContext, steps, sigma_max, sigma_min) -> tuple:
        return (_append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps).exp()),)


@node("PolyexponentialScheduler", category="sampling/schedulers", outputs=[Out(SIGMAS)])
class PolyexponentialScheduler:
    """Log-sigma along a power ramp (rho 1 is the exponential schedule)."""

    steps = Int(20, min=1, max=10_000)
    sigma_max, sigma_min = _sigma_range()
    rho = Float(1.0, min=0.0, max=100.0, step=0.01, round=False)

    def run(self, ctx: RunContext, steps, sigma_max, sigma_min, rho) -> tuple:
        ramp = torch.linspace(1, 0, steps) ** rho
        log_min = math.log(sigma_min)
        return (_append_zero(torch.exp(ramp * (math.log(sigma_max) - log_min) + log_min)),)


@node("SDTurboScheduler", category="sampling/schedulers", outputs=[Out(SIGMAS)])
class SDTurboScheduler:
    """SD-Turbo's schedule: up to 10 steps at timesteps 999, 899, ..., starting lower for partial denoise."""

    model = Link(MODEL)
    steps = Int(1, min=1, max=10)
    denoise = Float(1.0, min=0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, model, steps, denoise) -> tuple:
        start = 10 - int(10 * denoise)
        timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[start:start + steps]
        return (_append_zero(model.model_sampling.sigma(timesteps)),)


@node("BetaSamplingScheduler", category="sampling/schedulers", outputs=[Out(SIGMAS)])
class BetaSamplingScheduler:
    """The beta scheduler with its two shape parameters."""

    model = Link(MODEL)
    steps = Int(20, min=1, max=10_000)
    alpha = Float(0.6, min=0.0, max=50.0, step=0.01, round=False)
    beta = Float(0.6, min=0.0, max=50.0, step=0.01, round=False)

    def run(self, ctx: RunContext, model, steps, alpha, beta) -> tuple:
        return (beta_schedule(model.model_sampling, steps, alpha, beta),)


# Align Your Steps (Sabour et al., NVIDIA): 10-step schedules optimised per model family, from their page.
AYS_NOISE_LEVELS = {
    "SD1": [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
            0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582],
    "SDXL": [14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
             0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582],
    "SVD": [700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002],
}


def loglinear_interp(levels: list[float], count: int) -> np.ndarray:
    """`count` values through a decreasing sequence, interpolated linearly in log space."""
    xs = np.linspace(0, 1, len(levels))
    ys = np.log(levels[::-1])
    return np.exp(np.interp(np.linspace(0, 1, count), xs, ys))[::-1].copy()


@node("AlignYourStepsScheduler", category="sampling/custom_sampling/schedulers", outputs=[Out(SIGMAS)])
class AlignYourStepsScheduler:
    """NVIDIA's Align Your Steps schedule for a model family, stretched to `steps` (the last ones for denoise < 1)."""

    model_type = Choice(list(AYS_NOISE_LEVELS))
    steps = Int(10, min=1, max=10_000)
    denoise = Float(1.0, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, model_type, steps, denoise) -> tuple:
        total = steps
        if denoise < 1.0:
            if denoise <= 0.0:
                return (torch.zeros(0, dtype=torch.float32),)
            total = round(steps * denoise)
        levels = AYS_NOISE_LEVELS[model_type]
        sigmas = list(levels) if steps + 1 == len(levels) else list(loglinear_interp(levels, steps + 1))
        sigmas = sigmas[-(total + 1):]
        sigmas[-1] = 0.0
        return (torch.tensor(sigmas, dtype=torch.float32),)


@node("SplitSigmas", category="sampling/sigmas",
      outputs=[Out(SIGMAS, "high_sigmas"), Out(SIGMAS, "low_sigmas")])
class SplitSigmas:
    """Two schedules sharing the sigma at `step`: the first steps, and the rest."""

    sigmas = Link(SIGMAS)
    step = Int(0, min=0, max=10_000)

    def run(self, ctx: RunContext, sigmas, step) -> tuple:
        return (sigmas[:step + 1], sigmas[step:])


@node("SplitSigmasDenoise", category="sampling/sigmas",
      outputs=[Out(SIGMAS, "high_sigmas"), Out(SIGMAS, "low_sigmas")])
class SplitSigmasDenoise:
    """Split so that the low part holds round(steps * denoise) steps."""

    sigmas = Link(SIGMAS)
    denoise = Float(1.0, min=0.0, max=1.0, step=0.01)

    def run(self, ctx: RunContext, sigmas, denoise) -> tuple:
        steps = max(sigmas.shape[-1] - 1, 0)
        low_steps = round(steps * denoise)
        # ComfyUI's slice: with 0 low steps the high part is empty (sigmas[:-0]), kept as is.
        return (sigmas[:-low_steps], sigmas[-(low_steps + 1):])


@node("FlipSigmas", category="sampling/sigmas", outputs=[Out(SIGMAS)])
class FlipSigmas:
    """The schedule reversed (for unsampling); a leading 0 becomes 1e-4 so the first step is defined."""

    sigmas = Link(SIGMAS)

    def run(self, ctx: RunContext, sigmas) -> tuple:
        if len(sigmas) == 0:
            return (sigmas,)
        sigmas = sigmas.flip(0).clone()
        if float(sigmas[0]) == 0:
            sigmas[0] = 0.0001
        return (sigmas,)
