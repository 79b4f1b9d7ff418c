"""What the model patches cost or save on this CPU: one UNet call (CFG batch of 2) at several latent sizes,
plain and with FreeU, HyperTile, ToMe and PAG, on a UNet with SD1.5's layout at reduced width.

    python bench/model_patches.py [--width 128] [--sizes 64,96,128] [--repeats 3]

Prints the CPU model (lscpu) and, per size, seconds per call and the ratio to the plain model.
HyperTile and ToMe act on full-resolution self-attention, so their gain grows with the latent size.
"""

from __future__ import annotations

import argparse
import subprocess
import time

import torch

from nodes.model_patches import FreeU, HyperTile, TomePatchModel
from nodes.models.family import SD15
from nodes.models.handles import ModelHandle
from nodes.models.modules import build_unet
from nodes.models.patching import model_patches_applied
from nodes.models.shipped_configs import shipped_configs
from nodes.sampling import ModelSampling


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def isa_cap_note() -> str:
    """The oneDNN ISA cap a bench runs under (ONEDNN_MAX_CPU_ISA), for its header; empty when uncapped."""
    from nodes.models.runtime import onednn_isa_cap

    cap = onednn_isa_cap()
    return f" (oneDNN capped at {cap}: bf16 emulated)" if cap else ""


def timed(model: ModelHandle, size: int, repeats: int) -> float:
    x = torch.randn(2, 4, size // 8, size // 8)
    embeds = torch.randn(2, 77, model.unet.config.cross_attention_dim)
    best = float("inf")
    with model_patches_applied(model) as unet, torch.inference_mode():
        unet(x, torch.tensor([500.0]), encoder_hidden_states=embeds)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            unet(x, torch.tensor([500.0]), encoder_hidden_states=embeds)
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=128, help="first-level channels (SD1.5: 320)")
    parser.add_argument("--sizes", default="512,768,1024", help="image sizes in pixels (latent = size / 8)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = shipped_configs(SD15).unet
    w = args.width
    config.update(block_out_channels=[w, 2 * w, 4 * w, 4 * w], attention_head_dim=8)
    torch.manual_seed(0)
    unet = build_unet(config).to_empty(device="cpu").eval()  # built on the meta device: give it random weights
    with torch.no_grad():
        for tensor in unet.state_dict().values():
            tensor.normal_(0.0, 0.05)
    model = ModelHandle(unet, SD15, ModelSampling("epsilon"), "bench")
    variants = {
        "plain": model,
        "FreeU": FreeU().run(None, model, 1.1, 1.2, 0.9, 0.2)[0],
        "HyperTile": HyperTile().run(None, model, 256, 2, 0, False)[0],
        "ToMe 0.5": TomePatchModel().run(None, model, 0.5)[0],
    }
    print(f"CPU: {cpu_model()}, {torch.get_num_threads()} threads; UNet SD1.5 layout, width {w}")
    for size in (int(s) for s in args.sizes.split(",")):
        seconds = {name: timed(m, size, args.repeats) for name, m in variants.items()}
        print(f"{size}×{size}: " + " | ".join(f"{name} {t:.2f} s ({t / seconds['plain']:.2f}×)"
                                              for name, t in seconds.items()))


if __name__ == "__main__":
    main()
