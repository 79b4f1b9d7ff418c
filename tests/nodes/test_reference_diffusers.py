"""KSampler end to end against diffusers' Stable Diffusion pipelines, on the same weights, prompt
embeddings and noise.

Our side runs the real nodes through the Executor on a tiny random-weight SD1.x checkpoint;
the reference is `StableDiffusionPipeline` / `StableDiffusionImg2ImgPipeline` built from the very
modules our loader produced, with the diffusers scheduler class of the sampler, configured so that
its schedule is ComfyUI's. Both final latents are compared in the model's space.

What "the equivalent scheduler configuration" is, per ComfyUI scheduler name (4 steps unless a
pair says otherwise):
- normal: timesteps linspace(999, 0, steps); at 4 steps these are whole (999, 666, 333, 0), so
  diffusers' "linspace" spacing gives the same table sigmas (classes whose "linspace" spaces
  steps + 1 points, like DPM-Solver, are given those timesteps instead).
- simple: every (1000 / steps)-th table sigma from the top = "trailing" spacing (exact when
  1000 / steps is whole).
- ddim_uniform: table sigmas at stride 1000 // steps from timestep 1 = "leading" spacing with
  steps_offset=1 (the SD1.5 scheduler config).
- karras / exponential: `use_karras_sigmas` / `use_exponential_sigmas` (same formulas, same ends).
- sgm_uniform: fractional timesteps; only classes that take custom `sigmas` can follow it.
- beta: ComfyUI rounds Beta-quantile timesteps to the table (diffusers' `use_beta_sigmas` spaces
  sigma instead), so it goes in as custom integer `timesteps`.
Each pair also asserts that the diffusers schedule equals ours, so a drifting schedule is named as such.

The UNet timestep: we call the UNet, as ComfyUI does, at the integer timestep whose log-sigma is
nearest (`ModelSampling.timestep`); diffusers' Euler and Heun pass the fractional one for karras,
exponential and sgm_uniform sigmas. On this tiny model the choice moves the result by < 1e-4
(measured both ways), so these pairs pass either way and do not decide that question; shifting
every timestep by one does fail most pairs.

Conventions the test bridges on purpose (ComfyUI's, which we follow, differ from the pipeline's):
- Start: ComfyUI starts from noise * sqrt(1 + sigma_0^2) at the top of the schedule (noise * sigma_0
  below it); the pipeline multiplies `latents` by its `init_noise_sigma`. We hand the pipeline our
  starting latent divided by that factor (and, for variance-preserving classes, by sqrt(1 + sigma_0^2)).
- Per-step noise: ComfyUI draws it from a CPU generator seeded with seed + 1; the pipeline's
  `generator` is used only for that here (txt2img gets `latents`), so it is seeded seed + 1.
- img2img: ComfyUI's `steps` are the steps run (its schedule has int(steps / denoise) steps); the
  pipeline's `num_inference_steps` is the whole schedule, of which strength keeps int(n * strength).
  The init latent goes in as latents (our VAEEncode's posterior mean, times the scaling factor), so
  the pipeline's generator's first draw is the noise, as our seed's first draw is.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # never let diffusers reach a hub; everything is built from our modules

from diffusers import (  # noqa: E402
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LCMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)

from engine.config import EngineConfig, build_registry  # noqa: E402
from engine.context import RunContext  # noqa: E402
from engine.declare import NodeResult, Out, node  # noqa: E402
from engine.execute import Executor  # noqa: E402
from engine.paths import Paths  # noqa: E402
from engine.registry import NodeRegistry  # noqa: E402
from engine.types import ANY, IMAGE, Link  # noqa: E402
from engine.workflow import Workflow  # noqa: E402
from nodes.models.family import SD15  # noqa: E402
from nodes.sampling import ksampler_sigmas, sampler_info  # noqa: E402
from tests.nodes.checkpoints import save_tiny_checkpoint  # noqa: E402

SEED, CFG, SIZE = 8566257, 6.0, 64
POSITIVE, NEGATIVE = "a red circle on a blue square", "blurry, low quality"
TOLERANCE = 1e-3

# steps_offset=1 as in SD1.5's own config (the pipelines force it to 1 anyway); it only moves "leading" spacing.
SD_SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="epsilon",
                   steps_offset=1)
# Classes whose samples are in k-diffusion form (x0 + sigma * noise); the others work on x / sqrt(1 + sigma^2).
K_FORM = (EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, HeunDiscreteScheduler)

LINSPACE = dict(timestep_spacing="linspace")
TRAILING = dict(timestep_spacing="trailing")
LEADING = dict(timestep_spacing="leading")
KARRAS = dict(use_karras_sigmas=True)
EXPONENTIAL = dict(use_exponential_sigmas=True)
DDIM_CONFIG = dict(clip_sample=False, set_alpha_to_one=True)  # alpha one: the last step lands on sigma 0, as ComfyUI's
DDPM_CONFIG = dict(clip_sample=False)
DPM = dict(algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", final_sigmas_type="zero")


@dataclass(frozen=True)
class Pair:
    """A sampler/scheduler pair and the diffusers scheduler that reproduces it.

    `given`: how the pipeline learns the schedule: "spacing" (the class's own, from `config`),
    "timesteps" (our schedule's integer timesteps) or "sigmas" (our sigmas).
    """

    sampler: str
    scheduler: str
    cls: type
    config: dict = field(default_factory=dict)
    given: str = "spacing"
    steps: int = 4

    def __str__(self) -> str:
        return f"{self.sampler}-{self.scheduler}"


TXT2IMG = [
    Pair("euler", "normal", EulerDiscreteScheduler, LINSPACE),
    Pair("euler", "karras", EulerDiscreteScheduler, KARRAS),
    Pair("euler", "exponential", EulerDiscreteScheduler, EXPONENTIAL),
    Pair("euler", "sgm_uniform", EulerDiscreteScheduler, given="sigmas"),
    Pair("euler", "simple", EulerDiscreteScheduler, TRAILING),
    Pair("euler", "ddim_uniform", EulerDiscreteScheduler, LEADING),
    Pair("euler", "beta", EulerDiscreteScheduler, given="timesteps"),
    # EulerAncestral takes neither custom sigmas nor karras/exponential ones: only spacings.
    Pair("euler_ancestral", "normal", EulerAncestralDiscreteScheduler, LINSPACE),
    Pair("euler_ancestral", "simple", EulerAncestralDiscreteScheduler, TRAILING),
    Pair("euler_ancestral", "ddim_uniform", EulerAncestralDiscreteScheduler, LEADING),
    # Heun takes custom timesteps but interpolates sigma linearly between them: whole timesteps only.
    Pair("heun", "normal", HeunDiscreteScheduler, LINSPACE),
    Pair("heun", "karras", HeunDiscreteScheduler, KARRAS),
    Pair("heun", "exponential", HeunDiscreteScheduler, EXPONENTIAL),
    Pair("heun", "simple", HeunDiscreteScheduler, TRAILING),
    Pair("heun", "ddim_uniform", HeunDiscreteScheduler, LEADING),
    Pair("heun", "beta", HeunDiscreteScheduler, given="timesteps"),
    Pair("dpmpp_2m", "normal", DPMSolverMultistepScheduler, DPM, given="timesteps"),
    Pair("dpmpp_2m", "karras", DPMSolverMultistepScheduler, {**DPM, **KARRAS}),
    Pair("dpmpp_2m", "simple", DPMSolverMultistepScheduler, {**DPM, **TRAILING}),
    Pair("dpmpp_2m", "ddim_uniform", DPMSolverMultistepScheduler, DPM, given="timesteps"),
    Pair("dpmpp_2m", "beta", DPMSolverMultistepScheduler, DPM, given="timesteps"),
    # DDIM steps from t to t - 1000 // steps, so only evenly strided schedules are DDIM's.
    Pair("ddim", "simple", DDIMScheduler, {**DDIM_CONFIG, **TRAILING}),
    Pair("ddim", "ddim_uniform", DDIMScheduler, {**DDIM_CONFIG, **LEADING}),
    Pair("ddpm", "normal", DDPMScheduler, {**DDPM_CONFIG, **LINSPACE}),
    Pair("ddpm", "simple", DDPMScheduler, {**DDPM_CONFIG, **TRAILING}),
    Pair("ddpm", "ddim_uniform", DDPMScheduler, {**DDPM_CONFIG, **LEADING}),
    Pair("ddpm", "beta", DDPMScheduler, DDPM_CONFIG, given="timesteps"),
    # diffusers' LCM applies the consistency boundary condition c_skip = 0.25 / ((10 t)^2 + 0.25),
    # negligible only away from t = 0; ComfyUI's lcm on an epsilon model has none. Trailing spacing
    # ends at t = 249 (c_skip ~ 4e-8).
    Pair("lcm", "simple", LCMScheduler, given="timesteps"),
]
# Not paired, and why (the sampler-level test, test_sampling_diffusers_reference.py, covers their
# arithmetic where it can):
# - lms: diffusers' LMS integrates the last step to sigma 0; ComfyUI's returns the prediction there.
# - uni_pc, uni_pc_bh2: ComfyUI stops at sigma 0.001 instead of 0 and drops the second-to-last sigma.
# - deis: diffusers' DEISMultistepScheduler is a different DEIS variant than ComfyUI's "tab" one.
# - dpmpp_sde: paired with DPMSolverSDEScheduler (the same Brownian tree) in test_sde_noise.py.
# - dpmpp_2m_sde: ComfyUI's noise is a Brownian tree; DPMSolverMultistepScheduler draws seeded randn.
# - dpmpp_3m_sde: diffusers has no third-order SDE multistep step.
# - dpm_2, dpm_2_ancestral: ComfyUI builds steps + 1 sigmas and drops the second-to-last, which
#   no spacing of KDPM2(Ancestral)DiscreteScheduler reproduces ("trailing" comes closest:
#   timesteps 999, 666, 332 against ComfyUI's 999, 666, 333 at 3 steps), and they take no custom schedule.
# - dpmpp_2m with exponential: the schedule is the same, but DPMSolverMultistepScheduler casts the
#   fractional timesteps of exponential sigmas to int64, truncating (sigma_max is called at t = 998,
#   not 999), so its UNet sees other timesteps than either ComfyUI's (nearest) or the exact
#   fractional ones (measured: 1.2e-3 on the tiny model).
# - euler_ancestral with karras, exponential, sgm_uniform, beta; heun with sgm_uniform; ddim, ddpm,
#   lcm with the other schedulers: no configuration of the diffusers class gives that schedule
#   (see the per-class comments above).

IMG2IMG = [  # (pair, denoise): our `steps` are pair.steps; the pipeline runs int(steps / denoise) with strength denoise
    (Pair("euler", "normal", EulerDiscreteScheduler, LINSPACE, steps=2), 0.5),
    (Pair("euler", "karras", EulerDiscreteScheduler, KARRAS, steps=3), 0.75),
    (Pair("euler", "simple", EulerDiscreteScheduler, TRAILING, steps=2), 0.5),
    (Pair("heun", "normal", HeunDiscreteScheduler, LINSPACE, steps=2), 0.5),
    (Pair("dpmpp_2m", "karras", DPMSolverMultistepScheduler, {**DPM, **KARRAS}, steps=3), 0.75),
    (Pair("ddim", "ddim_uniform", DDIMScheduler, {**DDIM_CONFIG, **LEADING}, steps=2), 0.5),
]
# Samplers that draw noise every step (ancestral, SDE, ddpm, lcm) are left out of img2img: the img2img
# pipeline draws the initial noise and the step noise from one generator, where ComfyUI uses seed and seed + 1.

captured: dict[str, object] = {}


@node("CaptureValue", output_node=True, always_rerun=True)
class CaptureValue:
    """Hands what reaches it to the test, keyed by node id."""

    value = Link(ANY)

    def run(self, ctx: RunContext, value):
        captured[ctx.node_id] = value
        return NodeResult(ui={})


@node("TestGradientImage", outputs=[Out(IMAGE)])
class TestGradientImage:
    """A deterministic image with structure in both directions (a flat colour would be a weak init image)."""

    def run(self, ctx: RunContext):
        ys, xs = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
        image = torch.stack([xs, ys, 0.5 + 0.5 * torch.sin(6 * xs + 3 * ys)], dim=-1)
        return (image[None],)


@pytest.fixture(scope="module", autouse=True)
def hub_offline():
    """The environment variable is read when huggingface_hub is first imported, maybe before this module."""
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    (root / "models" / "checkpoints").mkdir(parents=True)
    save_tiny_checkpoint(root / "models" / "checkpoints", SD15, seed=3, name="tiny-sd15")
    registry = NodeRegistry([CaptureValue, TestGradientImage,
                             *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    return Executor(registry, Paths(root / "models", root / "input", root / "output", root / "temp"))


def workflow(pair: Pair, denoise: float = 1.0) -> Workflow:
    """Loader → two prompts → KSampler, with its inputs and output captured; img2img starts from VAEEncode."""
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": SEED, "steps": pair.steps, "cfg": CFG, "sampler_name": pair.sampler,
            "scheduler": pair.scheduler, "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
            "denoise": denoise}},
    }
    if denoise < 1:
        graph["10"] = {"class_type": "TestGradientImage", "inputs": {}}
        graph["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
        graph["3"]["inputs"]["latent_image"] = ["11", 0]
    for name, source in {"model": ["4", 0], "clip": ["4", 1], "vae": ["4", 2], "positive": ["6", 0],
                         "negative": ["7", 0], "latent": ["3", 0], "init": graph["3"]["inputs"]["latent_image"],
                         **({"pixels": ["10", 0]} if denoise < 1 else {})}.items():
        graph[f"capture_{name}"] = {"class_type": "CaptureValue", "inputs": {"value": source}}
    return Workflow.from_api(graph)


def run_ours(executor: Executor, pair: Pair, denoise: float = 1.0) -> dict[str, object]:
    captured.clear()
    result = executor.execute(workflow(pair, denoise))
    assert result.status == "success", result.error
    return {k.removeprefix("capture_"): v for k, v in captured.items()}


def make_scheduler(pair: Pair):
    return pair.cls(**SD_SCHEDULE, **pair.config)


def schedule_kwargs(pair: Pair, ours_sigmas: torch.Tensor, model_sampling) -> dict:
    """How the pipeline is told the schedule: a step count (the class spaces it), or ours outright."""
    steps = len(ours_sigmas) - 1
    if pair.given == "sigmas":
        return {"sigmas": ours_sigmas.tolist()}
    if pair.given == "timesteps":
        timesteps = model_sampling.timestep(ours_sigmas[:-1])
        assert torch.allclose(model_sampling.sigmas[timesteps], ours_sigmas[:-1]), "custom timesteps need table sigmas"
        return {"timesteps": timesteps.tolist()}
    return {"num_inference_steps": steps}


def diffusers_sigmas(scheduler) -> torch.Tensor:
    """The distinct sigmas a configured scheduler steps through (two-stage classes repeat each one)."""
    if isinstance(scheduler, (DDIMScheduler, DDPMScheduler, LCMScheduler)):
        abar = scheduler.alphas_cumprod[scheduler.timesteps.long()]
        return torch.cat([((1 - abar) / abar).sqrt(), torch.zeros(1)])
    sigmas = scheduler.sigmas.float()
    keep = torch.ones(len(sigmas), dtype=torch.bool)
    keep[1:] = sigmas[1:] != sigmas[:-1]
    return sigmas[keep]


def pipeline_parts(ours: dict) -> dict:
    model, clip, vae = ours["model"], ours["clip"], ours["vae"]
    return dict(vae=vae.vae, text_encoder=clip.text_encoders[0], tokenizer=clip.tokenizers[0], unet=model.unet,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def ours_schedule(pair: Pair, ours: dict, denoise: float) -> torch.Tensor:
    info = sampler_info(pair.sampler)
    return ksampler_sigmas(ours["model"].model_sampling, pair.scheduler, pair.steps, denoise,
                           info.discard_penultimate_sigma)


def assert_same_schedule(pair: Pair, reference: torch.Tensor, ours: torch.Tensor) -> None:
    assert reference.shape == ours.shape, f"{pair}: diffusers schedule {reference} vs ours {ours}"
    assert torch.allclose(reference, ours, rtol=1e-4, atol=1e-6), \
        f"{pair}: diffusers schedule {reference} vs ours {ours}"


def comfyui_start(noise: torch.Tensor, sigma_0: float, sigma_max: float) -> torch.Tensor:
    """ComfyUI's first x from an empty latent (its noise_scaling, with max_denoise at the schedule's top),
    written out here rather than taken from our code."""
    at_top = math.isclose(sigma_0, sigma_max, rel_tol=1e-5) or sigma_0 > sigma_max
    return noise * (math.sqrt(1 + sigma_0**2) if at_top else sigma_0)


def max_difference(pair: Pair, ours_latent: dict, reference: torch.Tensor, model) -> float:
    # Our LATENT is in the VAE's space (divided by the scaling factor); the pipeline's is the model's.
    got = ours_latent["samples"] * model.latent_scale
    assert got.shape == reference.shape
    return float((got - reference).abs().max())


def test_prompt_embeddings_equal_the_pipelines_own(executor):
    """So handing the pipeline our CLIPTextEncode output changes nothing about the comparison."""
    ours = run_ours(executor, TXT2IMG[0])
    pipe = StableDiffusionPipeline(**pipeline_parts(ours), scheduler=EulerDiscreteScheduler(**SD_SCHEDULE))
    positive, negative = pipe.encode_prompt(POSITIVE, "cpu", 1, True, NEGATIVE)
    assert torch.equal(ours["positive"][0].embeds, positive)
    assert torch.equal(ours["negative"][0].embeds, negative)


@pytest.mark.parametrize("pair", TXT2IMG, ids=str)
def test_txt2img_latent_equals_the_pipelines(executor, pair):
    ours = run_ours(executor, pair)
    model = ours["model"]
    sigmas = ours_schedule(pair, ours, 1.0)
    kwargs = schedule_kwargs(pair, sigmas, model.model_sampling)
    probe = make_scheduler(pair)
    probe.set_timesteps(**kwargs)
    assert_same_schedule(pair, diffusers_sigmas(probe), sigmas)

    noise = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED))
    sigma_0 = float(sigmas[0])
    start = comfyui_start(noise, sigma_0, model.model_sampling.sigma_max)
    if not isinstance(probe, K_FORM):
        start = start / math.sqrt(1 + sigma_0**2)
    pipe = StableDiffusionPipeline(**pipeline_parts(ours), scheduler=make_scheduler(pair))
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(prompt_embeds=ours["positive"][0].embeds, negative_prompt_embeds=ours["negative"][0].embeds,
                     height=SIZE, width=SIZE, guidance_scale=CFG, latents=start / probe.init_noise_sigma,
                     generator=torch.Generator().manual_seed(SEED + 1), output_type="latent", **kwargs).images
    assert max_difference(pair, ours["latent"], reference, model) < TOLERANCE


@pytest.mark.parametrize("pair, denoise", IMG2IMG, ids=lambda v: str(v) if isinstance(v, Pair) else f"d{v}")
def test_img2img_latent_equals_the_img2img_pipelines(executor, pair, denoise):
    ours = run_ours(executor, pair, denoise)
    model, vae = ours["model"], ours["vae"]
    # The same init latent: our VAEEncode is the posterior mean of diffusers' own encoder.
    pixels = ours["pixels"].permute(0, 3, 1, 2) * 2 - 1
    with torch.no_grad():
        mean = vae.vae.encode(pixels).latent_dist.mean
    assert torch.allclose(ours["init"]["samples"], mean, atol=1e-6)

    total = int(pair.steps / denoise)
    full = ksampler_sigmas(model.model_sampling, pair.scheduler, total)
    kwargs = schedule_kwargs(pair, full, model.model_sampling)
    probe = make_scheduler(pair)
    probe.set_timesteps(**kwargs)
    assert_same_schedule(pair, diffusers_sigmas(probe), full)
    assert torch.equal(full[-(pair.steps + 1):], ours_schedule(pair, ours, denoise))
    assert int(total * denoise) == pair.steps, "the pipeline's strength keeps as many steps as ours run"

    pipe = StableDiffusionImg2ImgPipeline(**pipeline_parts(ours), scheduler=make_scheduler(pair))
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(prompt_embeds=ours["positive"][0].embeds, negative_prompt_embeds=ours["negative"][0].embeds,
                     image=ours["init"]["samples"] * model.latent_scale, strength=denoise, guidance_scale=CFG,
                     generator=torch.Generator().manual_seed(SEED), output_type="latent", **kwargs).images
    assert max_difference(pair, ours["latent"], reference, model) < TOLERANCE
