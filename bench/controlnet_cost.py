"""What one sampling step with a ControlNet costs: the UNet plus the ControlNet's own forward, nothing more.

Full-size SD1.5-architecture UNet and ControlNet (`ControlNetModel.from_unet`, random weights: cost
depends on shapes only), fp32 on the CPU, cond and uncond in one batch as KSampler runs them. Prints
the CPU model (lscpu) and the median time of the UNet alone, the ControlNet alone and the whole
denoiser step with both, and the step's overhead over the sum (the issue asks for it within 3%).

    .venv/bin/python bench/controlnet_cost.py [--size 512] [--repeat 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                "unknown CPU")


def median_seconds(call, repeat: int) -> float:
    call()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (latent = size / 8)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from diffusers import ControlNetModel

    from nodes.conditioning.value import AppliedControl
    from nodes.models.family import SD15
    from nodes.models.modules import build_unet
    from nodes.models.shipped_configs import shipped_configs
    from nodes.sampling import Cond, ModelSampling, unet_denoiser

    torch.manual_seed(0)
    with torch.device("cpu"):
        unet = build_unet(shipped_configs(SD15).unet).to_empty(device="cpu")
    for p in unet.parameters():
        torch.nn.init.normal_(p, std=0.02)
    unet.eval()
    controlnet = ControlNetModel.from_unet(unet).eval()
    latent = args.size // 8
    x = torch.randn(1, 4, latent, latent)
    embeds = torch.randn(1, 77, 768)
    hint = torch.rand(1, 3, args.size, args.size)
    sigma = torch.tensor(5.0)
    ms = ModelSampling()
    timestep = ms.timestep(sigma).float().reshape(1)
    batch_x, batch_embeds = torch.cat([x, x]), torch.cat([embeds, embeds])
    batch_hint = torch.cat([hint, hint])

    control = (AppliedControl(controlnet, "bench", hint, 1.0),)
    step = unet_denoiser(unet, ms, Cond(embeds, control=control), Cond(embeds, control=control), cfg=7.0)

    with torch.no_grad():
        unet_alone = median_seconds(lambda: unet(batch_x, timestep.expand(2), encoder_hidden_states=batch_embeds),
                                    args.repeat)
        controlnet_alone = median_seconds(
            lambda: controlnet(batch_x, timestep.expand(2), encoder_hidden_states=batch_embeds,
                               controlnet_cond=batch_hint, return_dict=False), args.repeat)
        both = median_seconds(lambda: step(x * (sigma * sigma + 1).sqrt(), sigma), args.repeat)

    total = unet_alone + controlnet_alone
    print(f"CPU: {cpu_model()} ({torch.get_num_threads()} threads), {args.size}x{args.size}, batch 2 (cond + uncond), "
          f"fp32, median of {args.repeat}")
    print(f"UNet alone:             {unet_alone * 1000:9.1f} ms")
    print(f"ControlNet alone:       {controlnet_alone * 1000:9.1f} ms")
    print(f"step with both:         {both * 1000:9.1f} ms")
    print(f"overhead over the sum:  {(both - total) / total * 100:+9.1f} %")


if __name__ == "__main__":
    main()
