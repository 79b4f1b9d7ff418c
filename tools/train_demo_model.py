"""Train the built-in demo model `demo-shapes` on the CPU, from nothing but `tools/shapes_dataset.py`.

A small Stable Diffusion 1.x: an AutoencoderKL (4 levels, so 8× downscale, 4 latent channels),
a UNet2DConditionModel with cross-attention, a 2-layer CLIPTextModel over the real CLIP tokenizer,
epsilon prediction on SD1's noise schedule (scaled_linear betas 0.00085–0.012, 1000 steps). It is
saved as one single-file checkpoint in the LDM layout, which the loader recognises from its keys
and shapes like any SD1.x file.

    python tools/train_demo_model.py --out nodes/models/builtin/demo-shapes.safetensors

Stages: the VAE (shape-weighted reconstruction, on half-size images first), then a rescaling of its
latent space so that SD1's scaling factor 0.18215 (the loader's default) gives latents of unit
variance, and a check that it gives held-out scenes' colours back (the run stops if not), then the UNet
and text encoder together on the encoded dataset, with 10 % empty captions for classifier-free
guidance and an exponential moving average of their weights; optionally (`--decoder-steps`) the
decoder alone again, last. About 54 minutes on 2 idle cores with the defaults.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from nodes.conditioning.tokens import tokenize_prompt  # noqa: E402
from nodes.models.clip_tokenizer import load_clip_tokenizer  # noqa: E402
from nodes.models.family import SD15  # noqa: E402
from nodes.models.shipped_configs import FamilyConfigs, shipped_configs  # noqa: E402
from nodes.models.tiny import ldm_state_dict  # noqa: E402
from shapes_dataset import COLOURS, IMAGE_SIZE, POSITIONS, SHAPES, SIZES, make_dataset, nearest_colours, scene_coverage  # noqa: E402

TEXT_WIDTH = 64
UNET_CHANNELS = [32, 64]
# The encoder ends and the decoder ends with a GroupNorm of 32 groups (SD1's config, which the
# loader uses) over the lowest and the full-resolution level's channels, with no way around it.
# It standardises each group over the image, so a flat region's colour gets through only as the
# pattern within a group: with 2 channels per group that is one sign (the VAEs trained here with
# 64 channels there mixed blue, green and black into one teal), with 4 a continuous direction.
VAE_CHANNELS = [128, 32, 32, 128]
INITIAL_LOGVAR = -10.0  # the posterior's log-variance at first (std 0.007)
# The VAE must give back the shape's and the background's colour of this share of held-out scenes
# (drawn with HELD_OUT_SEED + the run's seed) before the diffusion stage starts.
REQUIRED_COLOUR_FIDELITY = 0.97
HELD_OUT_SEED = 10_000
CAPTION_DROPOUT = 0.1
EMA_DECAY = 0.998
TEXT_LR_SCALE = 3.0
TOKEN_INIT_STD = 1.0


def demo_configs() -> FamilyConfigs:
    """SD1.5's shipped configs, shrunk. Head counts follow the loader's rule for SD1.x (8 UNet heads
    per level, 64 channels per CLIP head), so the configs it reads off the file's shapes are these."""
    configs = shipped_configs(SD15)
    configs.unet.update(block_out_channels=UNET_CHANNELS, layers_per_block=1, sample_size=IMAGE_SIZE // 8,
                        down_block_types=["CrossAttnDownBlock2D"] * 2, up_block_types=["CrossAttnUpBlock2D"] * 2,
                        cross_attention_dim=TEXT_WIDTH, attention_head_dim=8)
    configs.vae.update(block_out_channels=VAE_CHANNELS, layers_per_block=1, sample_size=IMAGE_SIZE,
                       down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
    configs.text_encoders["text_encoder"].update(hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH,
                                                 num_hidden_layers=2, num_attention_heads=TEXT_WIDTH // 64,
                                                 projection_dim=TEXT_WIDTH)
    return configs


def build_modules(configs: FamilyConfigs) -> dict:
    """Fresh modules, their attention as two batched matmuls: at the UNet's head widths of 4 and 8,
    SDPA's fused CPU kernel is slower (the UNet's fp32 step takes 0.22 s instead of 0.29 s). The same
    function, so the checkpoint does not change."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor
    from transformers import CLIPTextConfig, CLIPTextModel

    text = {k: v for k, v in configs.text_encoders["text_encoder"].items() if not k.startswith("_")}
    unet = UNet2DConditionModel.from_config(dict(configs.unet))
    vae = AutoencoderKL.from_config(dict(configs.vae))
    for module in (unet, vae):
        module.set_attn_processor(AttnProcessor())
    return {"unet": unet, "vae": vae, "text_encoder": CLIPTextModel(CLIPTextConfig.from_dict(text))}


def sd1_alphas_cumprod() -> torch.Tensor:
    """SD1's training schedule: betas linear in sqrt space from 0.00085 to 0.012, 1000 steps."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] → float [N, 3, H, W] in -1..1."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def lr_at(step: int, steps: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW in one fused kernel: the plain one's step over the UNet's and text encoder's 4.3 M
    parameters takes 23 ms, a tenth of a diffusion step; fused, 5 ms."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def optimise(optimizer: torch.optim.Optimizer, params: list, loss: torch.Tensor, losses: list[float]) -> None:
    """One step on `loss`, gradients clipped to norm 1; its value appended to `losses`."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    losses.append(loss.item())


def log_progress(log, stage: str, step: int, steps: int, losses: list[float]) -> None:
    if step % 100 == 0 or step == steps - 1:
        log(f"{stage} step {step}/{steps} loss {np.mean(losses[-100:]):.4f}")


def autocast(dtype: torch.dtype):
    """Forward passes in `dtype` (bf16 is about 1.6× faster on CPUs with native bf16), weights and
    optimiser state in fp32."""
    return torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """`lr` times each parameter group's `scale` (1 when it has none)."""
    for group in optimizer.param_groups:
        group["lr"] = group.get("scale", 1.0) * lr


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """MSE + ½·L1 per pixel, averaged with per-pixel `weight` [N, 1, H, W] (normalised to mean 1)."""
    difference = reconstruction.float() - target
    error = difference.square() + 0.5 * difference.abs()
    return (weight * error).mean() / weight.mean()


def shape_weights(coverage: torch.Tensor, shape_weight: float) -> torch.Tensor:
    """[N, 1, H, W]: the shape's pixels (`coverage` [N, H, W], 0..1) weigh 1 + `shape_weight` times the
    background's. A small shape is a few % of the pixels: unweighted, the VAE draws the backgrounds
    right and gets the shape's colour wrong, which is what a prompt asks for first."""
    return 1 + shape_weight * coverage[:, None]


def train_vae(vae, images: torch.Tensor, weights: torch.Tensor, steps: int, half_res_steps: int, batch: int,
              lr: float, generator: torch.Generator, log, dtype: torch.dtype) -> float:
    """Shape-weighted reconstruction of posterior samples, with a KL term small enough not to blur:
    `half_res_steps` on the images shrunk to half size, then `steps` at full size.

    The loss sits on a plateau for some 600 steps, until the VAE learns to carry flat colours through
    its closing GroupNorms, and how long varies with the seed. A convolutional VAE learns that at half
    size as well, where a step costs a quarter, so the plateau is crossed there; the full-size steps
    after only sharpen. `weights`: `shape_weights` of the images; `dtype`: the forward passes' autocast."""
    vae.train()
    vae_stage(vae, F.avg_pool2d(images, 2), F.avg_pool2d(weights, 2), half_res_steps, batch, lr, generator, log,
              dtype, "vae (half size)")
    loss = vae_stage(vae, images, weights, steps, batch, lr, generator, log, dtype, "vae")
    vae.eval()
    return loss


def vae_stage(vae, images: torch.Tensor, weights: torch.Tensor, steps: int, batch: int, lr: float,
              generator: torch.Generator, log, dtype: torch.dtype, stage: str) -> float:
    """`steps` of AdamW from a fresh state (warm-up, then cosine); the last 100 steps' mean loss."""
    params = list(vae.parameters())
    optimizer = adamw(params, lr=lr, weight_decay=0.0)
    losses = []
    for step in range(steps):
        set_lr(optimizer, lr_at(step, steps, lr))
        index = torch.randint(0, len(images), (batch,), generator=generator)
        x = images[index]
        with autocast(dtype):
            posterior = vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
            reconstruction = vae.decode(z).sample
        loss = reconstruction_loss(reconstruction, x, weights[index]) + 1e-6 * posterior.kl().float().mean()
        optimise(optimizer, params, loss, losses)
        log_progress(log, stage, step, steps, losses)
    return float(np.mean(losses[-100:])) if losses else float("nan")


@torch.no_grad()
def colour_fidelity(vae, seed: int, dtype: torch.dtype, count: int = 200) -> tuple[float, float]:
    """Shares of `count` scenes drawn with `seed` whose shape, and whose background, the VAE gives back
    in the right colour (the nearest palette colour of most of the region's pixels; the background's
    in the top half, which is its first colour), through forward passes in `dtype` as the engine
    runs them. The diffusion model can draw no better than this."""
    pixels, _, scenes = make_dataset(count, seed=seed)
    latents = encode_all(vae, to_tensor(pixels), dtype)
    with autocast(dtype):
        decoded = vae.decode(latents).sample.float().clamp(-1, 1)
    nearest = nearest_colours(((decoded + 1) * 127.5).permute(0, 2, 3, 1).numpy())  # [N, H, W]
    names = list(COLOURS)

    def majority(labels: np.ndarray) -> int:
        return int(np.bincount(labels, minlength=len(names)).argmax())

    shapes = backgrounds = 0
    top = slice(0, IMAGE_SIZE // 2)
    for labels, scene in zip(nearest, scenes):
        coverage = scene_coverage(scene)
        shapes += majority(labels[coverage > 0.99]) == names.index(scene.colour)
        backgrounds += majority(labels[top][coverage[top] < 0.01]) == names.index(scene.background)
    return shapes / count, backgrounds / count


def finetune_decoder(vae, images: torch.Tensor, latents: torch.Tensor, weights: torch.Tensor, steps: int,
                     batch: int, lr: float, seed: int, log, dtype: torch.dtype) -> float:
    """Train the decoder alone on the frozen encoder's latents (as SD's ft-MSE VAE was made).

    The jointly trained VAE's decoder lags behind its encoder. With the encoder fixed the latent
    space does not move, so the UNet trained on it stays valid; the stage has its own random
    stream, so it gives the same decoder whether it runs before or after the diffusion stage.
    `latents`: the images' encodings (`encode_all`), unscaled; `weights`: `shape_weights`."""
    generator = torch.Generator().manual_seed(seed + 1)
    decoder = list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters())
    for parameter in decoder:
        parameter.requires_grad_(True)
    optimizer = adamw(decoder, lr=lr, weight_decay=0.0)
    vae.train()
    losses = []
    for step in range(steps):
        set_lr(optimizer, lr_at(step, steps, lr))
        index = torch.randint(0, len(images), (batch,), generator=generator)
        with autocast(dtype):
            reconstruction = vae.decode(latents[index]).sample
        optimise(optimizer, decoder, reconstruction_loss(reconstruction, images[index], weights[index]), losses)
        log_progress(log, "decoder", step, steps, losses)
    vae.eval()
    return float(np.mean(losses[-100:]))


@torch.no_grad()
def reconstruction_error(vae, latents: torch.Tensor, images: torch.Tensor) -> float:
    """Mean absolute error of decoding `latents` (unscaled) against `images`, in 0..255 per channel."""
    return float((vae.decode(latents).sample - images).abs().mean() * 127.5)


@torch.no_grad()
def encode_all(vae, images: torch.Tensor, dtype: torch.dtype = torch.float32, batch: int = 256) -> torch.Tensor:
    """The posterior means of `images`, in fp32, from forward passes in `dtype` (bf16 halves the two
    minutes that encoding the dataset takes in fp32)."""
    with autocast(dtype):
        return torch.cat([vae.encode(images[i:i + batch]).latent_dist.mean.float()
                          for i in range(0, len(images), batch)])


@torch.no_grad()
def normalise_latent_space(vae, latents: torch.Tensor, scaling_factor: float) -> torch.Tensor:
    """Shift and scale the VAE's latent space (exactly: its 1×1 quant convolutions absorb it) so that
    latents times `scaling_factor` have zero mean per channel and unit variance overall; returns
    `latents` (encoded before) as the changed VAE encodes them."""
    mean = latents.mean(dim=(0, 2, 3))
    scale = 1.0 / (scaling_factor * float((latents - mean[None, :, None, None]).std()))
    quant, post = vae.quant_conv, vae.post_quant_conv
    channels = mean.numel()
    # quant_conv yields [mean, logvar]: mean' = scale·(mean − m), logvar' = logvar + 2·ln(scale).
    quant.weight[:channels] *= scale
    quant.bias[:channels] = scale * (quant.bias[:channels] - mean)
    quant.bias[channels:] += 2 * math.log(scale)
    # post_quant_conv reads z = z'/scale + m.
    post.bias += post.weight[:, :, 0, 0] @ mean
    post.weight /= scale
    return scale * (latents - mean[None, :, None, None])


def caption_ids(captions: list[str], tokenizer) -> torch.Tensor:
    """The 77 token ids of each caption, exactly as CLIPTextEncode tokenizes it."""
    cache: dict[str, list[int]] = {}
    for caption in captions:
        if caption not in cache:
            cache[caption] = list(tokenize_prompt(caption, tokenizer).chunks[0].ids)
    return torch.tensor([cache[c] for c in captions], dtype=torch.long)


# What a caption can say, each read off it by `caption_labels`; the last class of each is "not said".
ATTRIBUTES = {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES),
              "background": list(COLOURS), "position": list(POSITIONS)}
CAPTION_PATTERN = re.compile(r"a (?:(?P<size>\w+) )?(?P<colour>\w+) (?P<shape>\w+)"
                             r"(?: on a (?P<background>\w+)(?: and \w+)? background)?(?:, (?P<position>.+))?")


def caption_labels(captions: list[str]) -> torch.Tensor:
    """[N, len(ATTRIBUTES)] class indices of what each caption says (the empty caption says nothing)."""
    rows = []
    for caption in captions:
        match = CAPTION_PATTERN.fullmatch(caption)
        said = match.groupdict() if match else {}
        rows.append([values.index(said[name]) if said.get(name) in values else len(values)
                     for name, values in ATTRIBUTES.items()])
    return torch.tensor(rows, dtype=torch.long)


class CaptionProbe(torch.nn.Module):
    """Linear read-outs of each attribute from the text encoder's output averaged over all 77 positions.

    Used only while training, as an auxiliary loss. At first the UNet's cross-attention averages
    the context almost uniformly, and a caption's words are a few of 77 positions, the rest end-of-
    text padding that barely differs between captions: the words' signal is diluted ~20×, and
    the UNet is slow to find it. Asking the average itself to tell the attributes spreads them
    over the padding, where the UNet sees them from the first step. Not saved in the checkpoint."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.heads = torch.nn.ModuleList(torch.nn.Linear(width, len(v) + 1) for v in ATTRIBUTES.values())

    def loss(self, context: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pooled = context.mean(dim=1)
        return sum(F.cross_entropy(head(pooled), labels[:, i]) for i, head in enumerate(self.heads))


def high_noise_weight(alphas: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-sample loss weights 1/SNR, clamped to [1, cap].

    An epsilon loss is small where the noise dominates (eps ≈ x_t), so unweighted it spends the
    model on fine detail at low noise, where the prompt tells nothing; the prompt decides the
    image at high noise. Weighting by 1/SNR there is the x0 loss; the cap keeps the last steps
    from dominating."""
    return ((1 - alphas) / alphas).clamp(1.0, cap)


def train_diffusion(unet, text_encoder, latents: torch.Tensor, ids: torch.Tensor, empty_ids: torch.Tensor,
                    labels: torch.Tensor, steps: int, batch: int, lr: float, generator: torch.Generator, log,
                    snapshot=None, snapshot_every: int = 0, weight_cap: float = 1.0,
                    probe_weight: float = 0.0, dtype: torch.dtype = torch.float32) -> tuple[float, dict]:
    """Epsilon prediction, timesteps uniform over SD1's 1000; returns the final loss and the EMA weights.
    `snapshot(step, ema)` is called every `snapshot_every` steps, to look at a model while it trains.
    `dtype`: the UNet's forward passes' autocast (bf16 takes its step from 0.28 s to 0.17 s; the text
    encoder's stays in fp32, where it is faster)."""
    alphas_cumprod = sd1_alphas_cumprod()
    probe = CaptionProbe(text_encoder.config.hidden_size)
    unet_params, text_params = list(unet.parameters()), list(text_encoder.parameters())
    params = unet_params + text_params
    # The text encoder starts from nothing and learns only through cross-attention: a higher rate.
    optimizer = adamw([{"params": unet_params, "scale": 1.0},
                       {"params": text_params + list(probe.parameters()), "scale": TEXT_LR_SCALE}],
                      lr=lr, weight_decay=0.01)
    ema = {"unet": copy.deepcopy(unet).eval().requires_grad_(False),
           "text_encoder": copy.deepcopy(text_encoder).eval().requires_grad_(False)}
    ema_params = list(ema["unet"].parameters()) + list(ema["text_encoder"].parameters())
    unet.train()
    text_encoder.train()
    losses = []
    for step in range(steps):
        set_lr(optimizer, lr_at(step, steps, lr, warmup=200))
        index = torch.randint(0, len(latents), (batch,), generator=generator)
        x0, tokens, said = latents[index], ids[index].clone(), labels[index].clone()
        dropped = torch.rand(batch, generator=generator) < CAPTION_DROPOUT
        tokens[dropped] = empty_ids
        said[dropped] = torch.tensor([len(v) for v in ATTRIBUTES.values()])
        # Half the timesteps from the noisier 60 %, where the prompt decides what is drawn.
        t = torch.randint(0, 1000, (batch,), generator=generator)
        noisy_half = torch.randint(400, 1000, (batch,), generator=generator)
        t = torch.where(torch.arange(batch) % 2 == 0, t, noisy_half)
        noise = torch.randn(x0.shape, generator=generator)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        context = text_encoder(input_ids=tokens).last_hidden_state
        with autocast(dtype):
            prediction = unet(noisy, t, encoder_hidden_states=context).sample
        per_sample = (prediction.float() - noise).square().mean(dim=(1, 2, 3))
        loss = (high_noise_weight(a.view(-1), weight_cap) * per_sample).mean()
        if probe_weight:
            loss = loss + probe_weight * probe.loss(context, said)
        optimise(optimizer, params, loss, losses)
        decay = min(EMA_DECAY, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - decay)
        log_progress(log, "diffusion", step, steps, losses)
        if snapshot is not None and snapshot_every and (step + 1) % snapshot_every == 0 and step + 1 < steps:
            snapshot(step + 1, ema)
    return float(np.mean(losses[-200:])), ema


def save_checkpoint(path: Path, modules: dict, metadata: dict[str, str]) -> int:
    """The single-file SD1.x checkpoint, in half precision (the loader casts to the run's dtype)."""
    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in ldm_state_dict(SD15, modules).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return path.stat().st_size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "nodes/models/builtin/demo-shapes.safetensors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=6000, help="dataset size")
    parser.add_argument("--shape-weight", type=float, default=2.0,
                        help="the shape's pixels weigh 1 + this times the background's in the VAE's losses")
    parser.add_argument("--vae-half-res-steps", type=int, default=2500,
                        help="VAE steps on the images shrunk to half size, first (a quarter of a full step's cost)")
    parser.add_argument("--vae-steps", type=int, default=400, help="VAE steps at full size, after")
    parser.add_argument("--vae-batch", type=int, default=16)
    parser.add_argument("--vae-lr", type=float, default=2e-3)
    parser.add_argument("--decoder-steps", type=int, default=0, help="decoder-only fine-tuning steps, last")
    parser.add_argument("--decoder-batch", type=int, default=16)
    parser.add_argument("--decoder-lr", type=float, default=3e-4)
    parser.add_argument("--steps", type=int, default=7000, help="UNet + text encoder steps")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-cap", type=float, default=20.0,
                        help="weight the loss by 1/SNR clamped to [1, this] (1: plain epsilon loss)")
    parser.add_argument("--probe-weight", type=float, default=0.5,
                        help="weight of the auxiliary loss that makes the averaged text context tell the caption")
    parser.add_argument("--skip-vae-check", action="store_true",
                        help="go on to the diffusion stage even when the VAE gets held-out colours wrong")
    parser.add_argument("--vae-from", type=Path, help="take the VAE of this demo checkpoint instead of training one")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="of the VAE's and the UNet's forward passes; auto: bf16 on CPUs with native bf16, "
                        "else fp32 (the text encoder trains in fp32: at its size bf16 is slower on the CPU)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="default: one per core; on a busy machine fewer are faster (idle threads spin)")
    parser.add_argument("--save-every", type=int, default=0, help="also write the EMA model every N steps")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from nodes.models.runtime import runtime_from_settings

    # The engine's own meaning of the setting: auto is bf16 on CPUs with native bf16, else fp32.
    runtime = runtime_from_settings({"device": "cpu", "precision": args.precision})
    precision, dtype = runtime.precision, runtime.dtype
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {message}", flush=True)

    configs = demo_configs()
    modules = build_modules(configs)
    with torch.no_grad():
        # CLIP's usual init (std 0.02) leaves the words' embeddings so small beside what all prompts
        # share that the UNet sees nearly one context and never learns to read it; distinct from the start.
        modules["text_encoder"].get_input_embeddings().weight.normal_(0.0, TOKEN_INIT_STD, generator=generator)
        # A posterior std of about 1 at first would drown the encoder's small initial means in noise.
        modules["vae"].quant_conv.bias[modules["vae"].config.latent_channels:] = INITIAL_LOGVAR
    for name, module in modules.items():
        log(f"{name}: {sum(p.numel() for p in module.parameters()) / 1e6:.2f} M parameters")
    log(f"{args.threads} threads, the VAE's and the UNet's forward passes in {precision}")
    pixels, captions, scenes = make_dataset(args.images, seed=args.seed)
    images = to_tensor(pixels)
    weights = shape_weights(torch.from_numpy(np.stack([scene_coverage(s) for s in scenes])).float(), args.shape_weight)
    log(f"dataset: {len(images)} images, {len(set(captions))} distinct captions")

    scaling_factor = float(configs.vae["scaling_factor"])
    vae_loss = float("nan")
    if args.vae_from is None:
        vae_loss = train_vae(modules["vae"], images, weights, args.vae_steps, args.vae_half_res_steps,
                             args.vae_batch, args.vae_lr, generator, log, dtype)
        vae_latents = normalise_latent_space(modules["vae"], encode_all(modules["vae"], images, dtype),
                                             scaling_factor)
    else:  # its latent space is normalised already
        from nodes.models.checkpoint import load_checkpoint

        modules["vae"].load_state_dict(load_checkpoint(args.vae_from).vae.state_dict())
        modules["vae"].eval()
        vae_latents = encode_all(modules["vae"], images, dtype)
    vae_seconds = time.monotonic() - started
    latents = vae_latents * scaling_factor
    reconstruction_mae = reconstruction_error(modules["vae"], vae_latents[:256], images[:256])
    log(f"latents: std {latents.std():.3f}; reconstruction error {reconstruction_mae:.2f}/255 per channel")
    shape_colour, background_colour = colour_fidelity(modules["vae"], HELD_OUT_SEED + args.seed, dtype)
    log(f"the VAE gives back the shape's colour in {shape_colour:.1%}, the background's in {background_colour:.1%} "
        f"of held-out scenes")
    if min(shape_colour, background_colour) < REQUIRED_COLOUR_FIDELITY and not args.skip_vae_check:
        raise SystemExit(f"the VAE has not converged: it gives back the shape's colour in {shape_colour:.1%} and "
                         f"the background's in {background_colour:.1%} of held-out scenes, below "
                         f"{REQUIRED_COLOUR_FIDELITY:.0%}, so no diffusion model trained on it could draw the "
                         f"colours asked for; stopped before the diffusion stage. Give it more --vae-half-res-steps "
                         f"(or --skip-vae-check to go on anyway).")

    tokenizer = load_clip_tokenizer()
    ids = caption_ids(captions, tokenizer)
    empty_ids = caption_ids([""], tokenizer)[0]

    def snapshot(step: int, ema: dict) -> None:
        path = args.out.with_name(f"{args.out.stem}-step{step}{args.out.suffix}")
        save_checkpoint(path, {"unet": ema["unet"], "vae": modules["vae"], "text_encoder": ema["text_encoder"]},
                        {"description": f"demo-shapes snapshot at step {step}"})
        log(f"wrote {path}")

    diffusion_loss, ema = train_diffusion(modules["unet"], modules["text_encoder"], latents, ids, empty_ids,
                                          caption_labels(captions), args.steps, args.batch, args.lr, generator, log,
                                          snapshot=snapshot, snapshot_every=args.save_every,
                                          weight_cap=args.weight_cap, probe_weight=args.probe_weight, dtype=dtype)
    decoder_loss = float("nan")
    if args.decoder_steps:
        decoder_loss = finetune_decoder(modules["vae"], images, vae_latents, weights, args.decoder_steps,
                                        args.decoder_batch, args.decoder_lr, args.seed, log, dtype)
        reconstruction_mae = reconstruction_error(modules["vae"], vae_latents[:256], images[:256])
        log(f"after the decoder's fine-tuning: reconstruction error {reconstruction_mae:.2f}/255 per channel")
    seconds = time.monotonic() - started
    command = "python tools/train_demo_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
    def figure(value: float) -> float | None:  # a stage that did not run has none (JSON has no NaN)
        return None if math.isnan(value) else round(value, 5)

    summary = {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"},
               "precision": precision, "vae_final_loss": figure(vae_loss),
               "diffusion_final_loss": figure(diffusion_loss), "decoder_final_loss": figure(decoder_loss),
               "vae_reconstruction_mae_of_255": round(reconstruction_mae, 2),
               "vae_shape_colour": shape_colour, "vae_background_colour": background_colour,
               "vae_seconds": round(vae_seconds),
               "total_seconds": round(seconds), "command": command, "torch": torch.__version__}
    final = {"unet": ema["unet"], "vae": modules["vae"], "text_encoder": ema["text_encoder"]}
    size = save_checkpoint(args.out, final, {"description": "sdgraph built-in demo model demo-shapes: "
                                             "coloured shapes from tools/shapes_dataset.py",
                                             "training": json.dumps(summary, sort_keys=True)})
    log(f"wrote {args.out} ({size / 1e6:.1f} MB)")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
