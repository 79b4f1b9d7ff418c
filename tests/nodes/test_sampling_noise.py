"""Seeded noise is ComfyUI's, bit for bit, and leaves the global RNG alone."""

import torch

from nodes.sampling.noise import StepNoise, initial_noise, inpaint_noise


def test_initial_noise_equals_manual_seed_then_randn():
    shape = (2, 4, 8, 8)
    for seed in (0, 42, 8566257, 2**63 + 5, 2**64 - 1):
        torch.manual_seed(seed)
        expected = torch.randn(shape)
        assert torch.equal(initial_noise(seed, shape), expected)


def test_initial_noise_is_float32_on_cpu():
    noise = initial_noise(3, (1, 4, 2, 2))
    assert noise.dtype == torch.float32 and noise.device.type == "cpu"


def test_global_rng_is_untouched():
    torch.manual_seed(123)
    expected = torch.randn(5)
    torch.manual_seed(123)
    initial_noise(7, (3, 3))
    StepNoise(7, torch.zeros(3))()
    assert torch.equal(torch.randn(5), expected)


def test_step_noise_is_a_generator_seeded_with_seed_plus_one():
    x = torch.zeros(1, 4, 4, 4)
    draws = StepNoise(10, x)
    generator = torch.Generator().manual_seed(11)
    for _ in range(3):
        assert torch.equal(draws(), torch.randn(x.shape, generator=generator))


def test_seed_plus_one_wraps_at_the_top_of_the_seed_range():
    x = torch.zeros(2, 2)
    assert torch.equal(StepNoise(2**64 - 1, x)(), torch.randn(2, 2, generator=torch.Generator().manual_seed(0)))


def test_inpaint_noise_uses_seed_plus_one():
    assert torch.equal(inpaint_noise(5, (1, 4, 2, 2)), initial_noise(6, (1, 4, 2, 2)))
