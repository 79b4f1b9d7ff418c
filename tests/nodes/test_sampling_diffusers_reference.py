"""Our samplers equal diffusers' schedulers driven the usual way, on a tiny random UNet.

The reference loop is diffusers' own (scale_model_input, UNet epsilon, CFG on epsilon,
scheduler.step), run on the scheduler's native sigma schedule; ours runs on the same
sigmas through our denoiser. The UNet gets the same timestep on both sides (ComfyUI's
nearest-integer timestep of the current sigma), so only the sampling arithmetic is compared.
"""

import inspect
import math

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2AncestralDiscreteScheduler,
    KDPM2DiscreteScheduler,
    UNet2DConditionModel,
    UniPCMultistepScheduler,
)

from nodes.sampling.cfg import EpsilonDenoiser
from nodes.sampling.noise import initial_noise
from nodes.sampling.samplers import sample
from nodes.sampling.schedule import ModelSampling

MS = ModelSampling()
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
SEED, CFG, STEPS = 1234, 5.0, 4


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    model = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, sample_size=8,
        in_channels=4, out_channels=4, attention_head_dim=8, norm_num_groups=32,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )
    return model.eval()


@pytest.fixture(scope="module")
def conds():
    generator = torch.Generator().manual_seed(7)
    return torch.randn(1, 77, 32, generator=generator), torch.randn(1, 77, 32, generator=generator)


def current_sigma(scheduler, i: int) -> float:
    """The sigma the scheduler evaluates the model at (its second stage may sit between table entries)."""
    index = i if scheduler.step_index is None else scheduler.step_index
    if getattr(scheduler, "sigmas_interpol", None) is not None and not scheduler.state_in_first_order:
        # The ancestral class reads its second-stage sigma one entry back.
        back = 1 if isinstance(scheduler, KDPM2AncestralDiscreteScheduler) else 0
        return float(scheduler.sigmas_interpol[index - back])
    return float(scheduler.sigmas[index])


@torch.no_grad()
def diffusers_loop(unet, conds, scheduler, noise, integer_timesteps=False):
    """Diffusers' usual loop; returns the final latent (k-form) and the k-form latent before each step."""
    cond, uncond = conds
    # Both sides start from ComfyUI's noise * sqrt(1 + sigma_0^2) (diffusers' k-form classes would use sigma_0).
    k_form = scheduler.init_noise_sigma != 1
    x = noise * math.sqrt(1 + float(scheduler.sigmas[0]) ** 2) if k_form else noise
    generator = torch.Generator().manual_seed(SEED + 1)
    trajectory = []
    for i, t in enumerate(scheduler.timesteps):
        starts_a_step = getattr(scheduler, "state_in_first_order", True)  # two-stage classes interleave
        x_in = scheduler.scale_model_input(x, t)
        if integer_timesteps:
            sigma, timestep = float(MS.sigmas[int(t)]), float(t)
            trajectory.append(x * math.sqrt(1 + sigma * sigma))
        else:
            sigma = current_sigma(scheduler, i)
            timestep = float(MS.timestep(torch.tensor(sigma)))
            if starts_a_step:
                trajectory.append(x if k_form else x * math.sqrt(1 + sigma * sigma))
        eps_c, eps_u = unet(torch.cat([x_in, x_in]), torch.tensor([timestep] * 2),
                            encoder_hidden_states=torch.cat([cond, uncond])).sample.chunk(2)
        eps = eps_u + CFG * (eps_c - eps_u)
        takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        x = scheduler.step(eps, t, x, **({"generator": generator} if takes_generator else {})).prev_sample
    final_sigma = float(scheduler.sigmas[-1]) if hasattr(scheduler, "sigmas") else 0.0
    return (x if k_form else x * math.sqrt(1 + final_sigma**2)), trajectory


def unique_sigmas(scheduler) -> torch.Tensor:
    """The schedule without the duplicated entries two-stage schedulers interleave."""
    sigmas = scheduler.sigmas.float()
    keep = torch.ones(len(sigmas), dtype=torch.bool)
    keep[1:] = sigmas[1:] != sigmas[:-1]
    return sigmas[keep]


def ours(name, unet, conds, sigmas, noise):
    denoiser = EpsilonDenoiser(unet, MS, conds[0], conds[1], cfg=CFG)
    x = noise * math.sqrt(1 + float(sigmas[0]) ** 2)
    trajectory = []
    out = sample(name, denoiser, x, sigmas, seed=SEED, callback=lambda i, n, x, d: trajectory.append(x.clone()))
    return out, trajectory


CASES = {
    "euler": lambda: EulerDiscreteScheduler(**SD),
    "euler_ancestral": lambda: EulerAncestralDiscreteScheduler(**SD),
    "heun": lambda: HeunDiscreteScheduler(**SD),
    "dpm_2": lambda: KDPM2DiscreteScheduler(**SD),
    "dpm_2_ancestral": lambda: KDPM2AncestralDiscreteScheduler(**SD),
    "dpmpp_2m": lambda: DPMSolverMultistepScheduler(**SD, algorithm_type="dpmsolver++", final_sigmas_type="zero"),
    "uni_pc": lambda: UniPCMultistepScheduler(**SD, solver_order=3, solver_type="bh1", final_sigmas_type="zero"),
}
# The last step differs on purpose for these: ComfyUI's uni_pc stops at sigma 0.001.
COMPARE_TRAJECTORY_ONLY = {"uni_pc"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_diffusers_scheduler(name, unet, conds):
    scheduler = CASES[name]()
    scheduler.set_timesteps(STEPS)
    sigmas = unique_sigmas(scheduler)
    noise = initial_noise(SEED, (1, 4, 8, 8))
    expected, expected_path = diffusers_loop(unet, conds, scheduler, noise)
    got, got_path = ours(name, unet, conds, sigmas, noise)
    assert len(got_path) == len(sigmas) - 1
    for ours_x, ref_x in zip(got_path, expected_path[: len(got_path)]):
        assert (ours_x - ref_x).abs().max() < 1e-3
    if name not in COMPARE_TRAJECTORY_ONLY:
        assert (got - expected).abs().max() < 1e-3


@pytest.mark.parametrize("name, scheduler_class", [("ddim", DDIMScheduler), ("ddpm", DDPMScheduler)])
def test_ddim_and_ddpm_match_diffusers_on_table_timesteps(name, scheduler_class, unet, conds):
    scheduler = scheduler_class(**SD, clip_sample=False, set_alpha_to_one=True) if name == "ddim" else \
        scheduler_class(**SD, clip_sample=False)
    scheduler.set_timesteps(STEPS)
    sigmas = torch.cat([MS.sigmas[scheduler.timesteps.long()], torch.zeros(1)])
    noise = initial_noise(SEED, (1, 4, 8, 8))
    expected, _ = diffusers_loop(unet, conds, scheduler, noise, integer_timesteps=True)
    got, _ = ours(name, unet, conds, sigmas, noise)
    assert (got - expected).abs().max() < 1e-3
