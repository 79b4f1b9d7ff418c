"""The SDE samplers' noise is ComfyUI's: a torchsde Brownian tree seeded with the seed, so a seed gives its image.

The noise stream is compared with diffusers' own Brownian-tree sampler (a port of k-diffusion's, which
ComfyUI runs); end to end, KSampler's dpmpp_sde equals diffusers' DPMSolverSDEScheduler (the same
k-diffusion sampler on the same Brownian tree) on the tiny checkpoint, from ComfyUI's first x.
"""

from __future__ import annotations

import torch
from diffusers import DPMSolverSDEScheduler, StableDiffusionPipeline
from diffusers.schedulers.scheduling_dpmsolver_sde import BrownianTreeNoiseSampler

from nodes.sampling.brownian import BrownianNoise
from nodes.sampling.noise import initial_noise
from nodes.sampling.samplers import sample
from nodes.sampling.schedule import ModelSampling, ksampler_sigmas
from tests.nodes.test_reference_diffusers import (  # noqa: F401  (executor and hub_offline are fixtures)
    CFG,
    KARRAS,
    SD_SCHEDULE,
    SEED,
    SIZE,
    Pair,
    assert_same_schedule,
    comfyui_start,
    diffusers_sigmas,
    executor,
    hub_offline,
    max_difference,
    ours_schedule,
    pipeline_parts,
    run_ours,
)

MS = ModelSampling()


def test_noise_equals_the_brownian_tree_sampler_of_k_diffusion():
    sigmas = ksampler_sigmas(MS, "karras", 6)
    like = torch.zeros(2, 4, 8, 8)
    ours = BrownianNoise(1234, like, sigmas)
    reference = BrownianTreeNoiseSampler(like, sigmas[sigmas > 0].min(), sigmas.max(), seed=1234)
    for s, s_next in zip(sigmas[:-2], sigmas[1:-1]):
        assert torch.equal(ours(s, s_next), reference(s, s_next))


def test_noise_is_unit_variance_and_seeded():
    sigmas = ksampler_sigmas(MS, "normal", 4)
    like = torch.zeros(4, 4, 32, 32)
    first = BrownianNoise(7, like, sigmas)(sigmas[0], sigmas[1])
    assert torch.equal(first, BrownianNoise(7, like, sigmas)(sigmas[0], sigmas[1]))
    assert not torch.equal(first, BrownianNoise(8, like, sigmas)(sigmas[0], sigmas[1]))
    assert abs(first.std().item() - 1) < 0.05 and abs(first.mean().item()) < 0.05


def test_brownian_increments_over_adjacent_steps_add_up():
    """A Brownian tree, not independent draws: the increment over two steps is the sum of the two."""
    sigmas = torch.tensor([10.0, 3.0, 1.0, 0.0])
    noise = BrownianNoise(5, torch.zeros(1, 4, 8, 8), sigmas)

    def increment(a, b):
        return noise(a, b) * (a - b).abs().sqrt()

    whole = increment(sigmas[0], sigmas[2])
    assert torch.allclose(whole, increment(sigmas[0], sigmas[1]) + increment(sigmas[1], sigmas[2]), atol=1e-5)


def test_sde_samplers_draw_from_the_tree_not_from_the_step_generator():
    """Same seed, same result; and the SDE steps follow the tree: swapping the seed moves the image."""
    sigmas = ksampler_sigmas(MS, "karras", 5)
    x = initial_noise(0, (1, 4, 8, 8)) * float(sigmas[0])
    for name in ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"):
        a = sample(name, lambda x, s: x * 0.5, x, sigmas, seed=11)
        assert torch.equal(a, sample(name, lambda x, s: x * 0.5, x, sigmas, seed=11))
        assert not torch.equal(a, sample(name, lambda x, s: x * 0.5, x, sigmas, seed=12))


def test_ksampler_dpmpp_sde_equals_diffusers_dpm_solver_sde_pipeline(executor):  # noqa: F811
    pair = Pair("dpmpp_sde", "karras", DPMSolverSDEScheduler, KARRAS)
    ours = run_ours(executor, pair)
    model = ours["model"]
    sigmas = ours_schedule(pair, ours, 1.0)

    def scheduler(noise_seed: int = SEED):
        return DPMSolverSDEScheduler(**SD_SCHEDULE, **KARRAS, noise_sampler_seed=noise_seed)

    probe = scheduler()
    probe.set_timesteps(pair.steps)
    assert_same_schedule(pair, diffusers_sigmas(probe), sigmas)
    noise = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED))
    start = comfyui_start(noise, float(sigmas[0]), model.model_sampling.sigma_max)

    def pipeline_latent(noise_seed: int) -> torch.Tensor:
        pipe = StableDiffusionPipeline(**pipeline_parts(ours), scheduler=scheduler(noise_seed))
        pipe.set_progress_bar_config(disable=True)
        return pipe(prompt_embeds=ours["positive"][0].embeds, negative_prompt_embeds=ours["negative"][0].embeds,
                    height=SIZE, width=SIZE, guidance_scale=CFG, latents=start / probe.init_noise_sigma,
                    num_inference_steps=pair.steps, output_type="latent").images

    reference = pipeline_latent(SEED)
    # DPMSolverSDEScheduler calls the UNet at fractional timesteps (its midpoints are off the table);
    # ComfyUI, and we, at the nearest integer one: the latents agree to a few 1e-4 of their scale.
    # Another tree seed moves them by far more, so the agreement is the noise's, not the model's.
    scale = float(reference.abs().max())
    agreement = max_difference(pair, ours["latent"], reference, model) / scale
    assert agreement < 1e-3
    assert max_difference(pair, ours["latent"], pipeline_latent(SEED + 1), model) / scale > 20 * agreement
