"""TAESD from `models/vae_approx`: VAELoader's `taesd`/`taesdxl` and the samplers' previews, with
random-weight files in the original key layout, checked against the original modules."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from engine.config import EngineConfig, build_registry
from engine.context import InterruptHandle, RunContext
from engine.events import EventLog
from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.workflow import Workflow
from nodes.loaders import VAELoader
from nodes.models.state_dict_files import CheckpointFileError
from nodes.models.taesd import load_decoder
from nodes.previews import preview_jpeg
from nodes.vae_nodes import decode, encode
from tests.nodes.capture import Capture


# The original TAESD architecture (madebyollin/taesd), whose state dicts the released files are.
def conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


def original_encoder() -> nn.Sequential:
    """Images in 0..1 → latents (model space)."""
    stages: list[nn.Module] = []
    for _ in range(3):
        stages += [conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64)]
    return nn.Sequential(conv(3, 64), Block(64, 64), *stages, conv(64, 4))


def original_decoder() -> nn.Sequential:
    """Latents (model space) → images in 0..1."""
    stages: list[nn.Module] = []
    for _ in range(3):
        stages += [Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2), conv(64, 64, bias=False)]
    return nn.Sequential(Clamp(), conv(4, 64), nn.ReLU(), *stages, Block(64, 64), conv(64, 3))


def save_half(folder, file_name: str, module: nn.Module, seed: int) -> nn.Module:
    """Random weights (wide enough to draw varied images) written as the released files are."""
    torch.manual_seed(seed)
    for param in module.parameters():
        nn.init.normal_(param, std=0.15)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    if file_name.endswith(".safetensors"):
        save_file(state, str(folder / file_name))
    else:
        torch.save(state, folder / file_name)
    return module.eval()


def vae_choices(models_dir) -> list[str]:
    registry = build_registry(EngineConfig(extension_dirs=[]))
    return registry.object_info(Paths(models_dir))["VAELoader"]["input"]["required"]["vae_name"][0]


def test_vae_loader_offers_a_taesd_only_when_both_halves_exist(tmp_path):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "my-vae.safetensors").write_bytes(b"x")
    approx = tmp_path / "vae_approx"
    save_half(approx, "taesd_decoder.pth", original_decoder(), seed=1)
    save_half(approx, "taesdxl_encoder.safetensors", original_encoder(), seed=2)
    assert vae_choices(tmp_path) == ["my-vae.safetensors"], "decoder-only or encoder-only files are not a VAE"
    save_half(approx, "taesd_encoder.pth", original_encoder(), seed=3)
    assert vae_choices(tmp_path) == ["my-vae.safetensors", "taesd"]
    save_half(approx, "taesdxl_decoder.safetensors", original_decoder(), seed=4)
    assert vae_choices(tmp_path) == ["my-vae.safetensors", "taesd", "taesdxl"]


def run_context(paths: Paths) -> RunContext:
    return RunContext("1", "p", paths, InterruptHandle(), emit=lambda event, data: None)


@pytest.mark.parametrize(("name", "scale", "suffix"), [("taesd", 0.18215, ".pth"),
                                                         ("taesdxl", 0.13025, ".safetensors")])
def test_loaded_taesd_decodes_and_encodes_as_the_original_modules(tmp_path, name, scale, suffix):
    approx = tmp_path / "vae_approx"
    encoder = save_half(approx, f"{name}_encoder{suffix}", original_encoder(), seed=5)
    decoder = save_half(approx, f"{name}_decoder{suffix}", original_decoder(), seed=6)
    (vae,) = VAELoader().run(run_context(Paths(tmp_path)), name)
    assert vae.scaling_factor == scale and vae.source == name

    latents = torch.randn(2, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    images = decode(vae, latents)
    with torch.no_grad():
        expected = decoder(latents * scale).clamp(0, 1).permute(0, 2, 3, 1)
    assert images.shape == (2, 64, 96, 3)
    assert expected.std() > 0.05, "the random weights draw something"
    torch.testing.assert_close(images, expected, atol=1e-5, rtol=1e-5)

    pixels = torch.rand(1, 64, 96, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected_latents = encoder(pixels.permute(0, 3, 1, 2)) / scale
    torch.testing.assert_close(encode(vae, pixels), expected_latents, atol=1e-4, rtol=1e-5)


def test_a_file_of_another_layout_is_refused_naming_the_file(tmp_path):
    save_file({"decoder.conv_in.weight": torch.zeros(64, 4, 3, 3)}, str(tmp_path / "taesd_decoder.safetensors"))
    with pytest.raises(CheckpointFileError, match="taesd_decoder.safetensors"):
        load_decoder(tmp_path / "taesd_decoder.safetensors")


def test_previews_use_the_familys_taesd_decoder_only_when_present(tmp_path):
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    paths = Paths(tmp_path)
    assert preview_jpeg(latent, paths=paths) == preview_jpeg(latent), "no vae_approx: the linear map"
    save_half(tmp_path / "vae_approx", "taesdxl_decoder.pth", original_decoder(), seed=7)
    assert preview_jpeg(latent, paths=paths) == preview_jpeg(latent), "an SDXL decoder does not preview SD1 latents"
    assert preview_jpeg(latent, sdxl=True, paths=paths) != preview_jpeg(latent, sdxl=True)


def jpeg_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def test_ksampler_previews_are_decoded_by_taesd(models_dir, tmp_path, monkeypatch):
    from nodes import previews

    monkeypatch.setattr(previews, "TAESD_TIME_SHARE", float("inf"))  # every step decoded (the share: its own test)
    decoder = save_half(models_dir / "vae_approx", "taesd_decoder.pth", original_decoder(), seed=8)
    registry = NodeRegistry([Capture, *[d.cls for d in build_registry(EngineConfig(extension_dirs=[]))]])
    executor = Executor(registry, Paths(models_dir, tmp_path / "in", tmp_path / "out", tmp_path / "temp"),
                        settings={"previews": True, "captured": []})
    workflow = Workflow.from_api({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": 3, "steps": 3, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "c": {"class_type": "Capture", "inputs": {"value": ["3", 0]}},
        "m": {"class_type": "Capture", "inputs": {"value": ["4", 0]}}})
    log = EventLog()
    result = executor.execute(workflow, listener=log)
    assert result.status == "success", result.error
    previews = log.of("preview")
    assert len(previews) == 3 and all(p["node"] == "3" and p["format"] == "JPEG" for p in previews)

    # Euler's last step lands on its last prediction: the last preview shows the sampled latent.
    captured = executor.settings["captured"]
    latent = next(v for v in captured if isinstance(v, dict))["samples"]
    model = next(v for v in captured if not isinstance(v, dict))
    with torch.no_grad():
        image = decoder(latent * model.latent_scale)[0].clamp(0, 1).permute(1, 2, 0)
    expected = Image.fromarray((image * 255).round().to(torch.uint8).numpy())
    buffer = io.BytesIO()
    expected.save(buffer, format="JPEG", quality=80)
    shown = jpeg_pixels(previews[-1]["data"])
    assert shown.shape == (64, 64, 3)
    assert np.abs(shown - jpeg_pixels(buffer.getvalue())).mean() < 0.5
    cheap = jpeg_pixels(preview_jpeg(latent * model.latent_scale))
    assert np.abs(shown - cheap).mean() > 10, "not the linear map's colours"


def test_taesd_previews_keep_to_their_share_of_the_run_and_cheap_ones_fill_in(monkeypatch):
    from nodes import previews
    from nodes.models import taesd

    now = [0.0]
    decoded = []

    def slow_decoder(latent):
        decoded.append(now[0])
        now[0] += 1.0  # a decode costs a second of the run
        return torch.zeros(1, 3, 8 * latent.shape[2], 8 * latent.shape[3])

    monkeypatch.setattr(taesd, "preview_decoder", lambda paths, sdxl: slow_decoder)
    sent = []
    preview = previews.Previewer(lambda fmt, data: sent.append(data), False, paths=object(), clock=lambda: now[0])
    latent = torch.zeros(1, 4, 8, 8)
    for step_start in (0.0, 1.5, 2.0, 4.5, 9.0):
        now[0] = max(now[0], step_start)
        preview(latent)
    assert decoded == [0.0, 4.5, 9.0], "a decode only once the decodes so far are within a quarter of the run"
    assert len(sent) == 5 and sent[1] == previews.preview_jpeg(latent), "the others get the cheap preview"
