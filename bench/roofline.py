"""How close the fp32 UNet call already is to this CPU's fp32 arithmetic peak: what bounds the exact path.

    python bench/roofline.py [--sizes 256 512] [--repeats 3]

The exact path (fp32 in, fp32 out) cannot do fewer multiply-adds than the UNet has. This counts them
(`torch.utils.flop_counter`, one call on the CFG batch of the full-size SD1.5 layout of bench/full_size.py),
measures the CPU's fp32 peak as torch reaches it (the best of large square matrix products, the kernel that
runs closest to peak), and times the eager call: the ratio of that lower bound to eager's time is the best
any exact compiled path could reach here, and the achieved fraction of peak shows what is left.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from int8 import cpu_model, load_unet  # noqa: E402


def best_seconds(repeats: int, call, *args, **kwargs) -> float:
    call(*args, **kwargs)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(*args, **kwargs)
        times.append(time.perf_counter() - started)
    return min(times)


def matmul_peak(repeats: int) -> float:
    """fp32 FLOP/s of the best square matrix product among a few sizes."""
    import torch

    best = 0.0
    for n in (1024, 2048, 4096):
        a, b = torch.randn(n, n), torch.randn(n, n)
        best = max(best, 2 * n**3 / best_seconds(repeats, torch.matmul, a, b))
    return best


def main() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    peak = matmul_peak(args.repeats)
    print(f"CPU: {cpu_model()}, {torch.get_num_threads()} threads; fp32 matrix-product peak {peak / 1e9:.0f} GFLOP/s")
    model = load_unet("fp32")
    generator = torch.Generator().manual_seed(0)
    for size in args.sizes:
        sample = torch.randn(2, 4, size // 8, size // 8, generator=generator)
        context = torch.randn(2, 77, 768, generator=generator)
        timestep = torch.full((2,), 500.0)
        with torch.inference_mode():
            counter = FlopCounterMode(display=False)
            with counter:
                model.unet(sample, timestep, encoder_hidden_states=context)
            flops = counter.get_total_flops()
            seconds = best_seconds(args.repeats, model.unet, sample, timestep,
                                   encoder_hidden_states=context)
        bound = flops / peak
        print(f"  {size} px, batch 2: {flops / 1e12:.2f} TFLOP; eager fp32 {seconds:.2f} s = "
              f"{flops / seconds / 1e9:.0f} GFLOP/s ({flops / seconds / peak:.0%} of peak); at peak {bound:.2f} s = "
              f"{bound / seconds:.2f}x eager, the floor of any exact path")


if __name__ == "__main__":
    main()
