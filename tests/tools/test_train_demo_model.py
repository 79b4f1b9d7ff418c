"""tools/train_demo_model.py runs end to end (a few steps of each stage) and writes a checkpoint the
loader takes for an ordinary SD1.x file, with the run's settings and figures in its metadata.
Whether a full run draws what is asked is tests/nodes/test_demo_model.py's job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from nodes.models.builtin import DEMO_CHECKPOINT, SHIPPED_CHECKPOINTS
from nodes.models.checkpoint import load_checkpoint
from tools import train_demo_model
from tools.shapes_dataset import make_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_short_run_writes_an_sd1_checkpoint_with_its_training_record(tmp_path):
    out = tmp_path / "smoke.safetensors"
    result = subprocess.run(
        [sys.executable, "tools/train_demo_model.py", "--out", str(out), "--images", "32", "--vae-half-res-steps", "2",
         "--vae-steps", "2", "--vae-batch", "2", "--steps", "2", "--batch", "4", "--decoder-steps", "2",
         "--decoder-batch", "2", "--threads", "1", "--precision", "fp32", "--skip-vae-check"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = load_checkpoint(out)
    assert loaded.family.name == "sd15"
    assert list(loaded.vae.config.block_out_channels) == train_demo_model.VAE_CHANNELS
    assert list(loaded.unet.config.block_out_channels) == train_demo_model.UNET_CHANNELS
    assert loaded.text_encoders[0].config.hidden_size == train_demo_model.TEXT_WIDTH
    with safe_open(str(out), "pt") as f:
        record = json.loads(f.metadata()["training"])
    assert record["steps"] == 2 and record["vae_steps"] == 2 and record["precision"] == "fp32"
    assert np.isfinite(record["diffusion_final_loss"]) and np.isfinite(record["vae_final_loss"])
    assert 0 <= record["vae_shape_colour"] <= 1 and 0 <= record["vae_background_colour"] <= 1


def test_the_shipped_model_was_trained_with_the_scripts_current_defaults():
    """The model card says the shipped file is the output of the default command: a changed default
    must come with a retrained file. Only where it ran and what it wrote beside it may differ."""
    with safe_open(str(SHIPPED_CHECKPOINTS[DEMO_CHECKPOINT]), "pt") as f:
        record = json.loads(f.metadata()["training"])
    incidental = {"out", "threads", "save_every", "precision"}
    defaults = {k: v for k, v in vars(train_demo_model.parse_args([])).items() if k not in incidental}
    assert {k: record[k] for k in defaults} == defaults
    assert record["total_seconds"] < 3600, "the issue asks for well under an hour on 2 cores"


@pytest.mark.slow
def test_a_run_whose_vae_gets_colours_wrong_stops_before_the_diffusion_stage(tmp_path):
    """Four VAE steps cannot give colours back: the run says so and writes nothing, instead of spending
    half an hour on a diffusion model that could not draw them."""
    out = tmp_path / "unconverged.safetensors"
    result = subprocess.run(
        [sys.executable, "tools/train_demo_model.py", "--out", str(out), "--images", "32", "--vae-half-res-steps", "2",
         "--vae-steps", "2", "--vae-batch", "2", "--steps", "2", "--batch", "4", "--threads", "1",
         "--precision", "fp32"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "the VAE has not converged" in result.stderr and "diffusion stage" in result.stderr
    assert "diffusion step" not in result.stdout
    assert not out.exists()


def test_colour_fidelity_counts_the_scenes_a_vae_gives_back_in_their_colours():
    """An exact autoencoder (identity) gets every scene's colours right; one that returns grey gets
    only the scenes whose colours are nearest grey."""
    import torch

    class Identity:
        def encode(self, images):
            return type("Encoded", (), {"latent_dist": type("Dist", (), {"mean": images})()})()

        def decode(self, latents):
            return type("Decoded", (), {"sample": latents})()

    class Grey(Identity):
        def decode(self, latents):
            return type("Decoded", (), {"sample": torch.zeros_like(latents)})()

    assert train_demo_model.colour_fidelity(Identity(), 3, torch.float32, count=40) == (1.0, 1.0)
    shape, background = train_demo_model.colour_fidelity(Grey(), 3, torch.float32, count=40)
    assert shape < 0.5 and background < 0.5


@pytest.mark.slow
def test_the_training_attention_computes_what_the_engines_attention_does():
    """The modules train with attention as batched matmuls (faster on the CPU at these head widths);
    the engine loads the checkpoint with diffusers' default SDPA attention, which must give the same
    outputs for the same weights."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    torch.manual_seed(0)
    modules = train_demo_model.build_modules(train_demo_model.demo_configs())
    unet, vae = modules["unet"].eval(), modules["vae"].eval()
    assert all(isinstance(p, AttnProcessor) for p in [*unet.attn_processors.values(), *vae.attn_processors.values()])
    latents, context, images = torch.randn(2, 4, 8, 8), torch.randn(2, 77, 64), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        trained = unet(latents, 500, encoder_hidden_states=context).sample, vae(images).sample
        unet.set_attn_processor(AttnProcessor2_0())
        vae.set_attn_processor(AttnProcessor2_0())
        engine = unet(latents, 500, encoder_hidden_states=context).sample, vae(images).sample
    for a, b in zip(trained, engine):  # the same up to fp32 rounding (1e-6 and 1e-5 measured)
        assert a.abs().max() > 0.1  # outputs, not zeros
        assert (a - b).abs().max() < 1e-4 * a.abs().max()


@pytest.mark.slow
def test_the_latent_space_is_normalised_for_sd1s_scaling_factor():
    """After `normalise_latent_space`, latents × 0.18215 have zero channel means and unit variance, and
    the VAE decodes them to the same images as before (the 1×1 convolutions absorb the change)."""
    import torch

    torch.manual_seed(0)
    vae = train_demo_model.build_modules(train_demo_model.demo_configs())["vae"].eval()
    images = train_demo_model.to_tensor(make_dataset(8, seed=1)[0])
    with torch.no_grad():
        before = train_demo_model.encode_all(vae, images)
        decoded_before = vae.decode(before).sample
        after = train_demo_model.normalise_latent_space(vae, before, 0.18215)
        decoded_after = vae.decode(after).sample
    scaled = after * 0.18215
    assert scaled.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert abs(float(scaled.std()) - 1) < 1e-3
    assert torch.allclose(train_demo_model.encode_all(vae, images), after, atol=1e-4)
    assert torch.allclose(decoded_before, decoded_after, atol=1e-4)


def test_the_dataset_is_the_same_for_the_same_seed():
    first, captions, _ = make_dataset(20, seed=4)
    again, captions_again, _ = make_dataset(20, seed=4)
    other, _, _ = make_dataset(20, seed=5)
    assert np.array_equal(first, again) and captions == captions_again
    assert not np.array_equal(first, other)
