"""Model upscaling: time and peak memory of a 4× RealESRGAN-architecture model, 512 → 2048 px.

    python bench/upscale.py [--size 512] [--blocks 23] [--features 64] [--device cpu|cuda] [--repeat 1]

The model is RRDBNet with Real-ESRGAN x4plus's shape (23 blocks, 64 features) and random weights,
written as .safetensors to a temporary models folder and loaded by UpscaleModelLoader; the image is
upscaled by ImageUpscaleWithModel (512 px tiles, 32 px overlap), so a 512 px image is one tile and
larger ones show the tiling. Peak memory: the process's resident-set high-water mark on CPU
(it includes the interpreter and torch), the CUDA allocator's peak on a GPU.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import safetensors.torch  # noqa: E402
import torch  # noqa: E402

from engine.context import InterruptHandle, RunContext  # noqa: E402
from engine.paths import Paths  # noqa: E402
from nodes.models.upscale_loading import import_spandrel  # noqa: E402
from nodes.upscale import ImageUpscaleWithModel, UpscaleModelLoader  # noqa: E402


def write_model(folder: Path, blocks: int, features: int) -> str:
    import_spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    model = ESRGAN(in_nc=3, out_nc=3, num_filters=features, num_blocks=blocks, scale=4)
    (folder / "upscale_models").mkdir(parents=True)
    name = f"RealESRGAN-arch-x4-{blocks}b{features}f-random.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                                folder / "upscale_models" / name)
    return name


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--blocks", type=int, default=23)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16", "auto"])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        name = write_model(Path(tmp), args.blocks, args.features)
        tiles: list[int] = []
        ctx = RunContext(node_id="1", prompt_id="bench", paths=Paths(models_dir=Path(tmp)),
                         interrupt=InterruptHandle(), emit=lambda event, data: tiles.append(data["max"]),
                         settings={"device": args.device, "precision": args.precision})
        started = time.perf_counter()
        (model,) = UpscaleModelLoader().run(ctx, name)
        load_s = time.perf_counter() - started
        image = torch.rand(1, args.size, args.size, 3)
        print(f"device {args.device}, {args.precision}: {name} ({sum(p.numel() for p in model.model.parameters()):,} "
              f"parameters) loaded in {load_s:.2f} s; image {args.size}x{args.size} -> "
              f"{args.size * 4}x{args.size * 4}")
        for run in range(args.repeat):
            tiles.clear()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            rss_before = rss_mib()
            started = time.perf_counter()
            (out,) = ImageUpscaleWithModel().run(ctx, model, image)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            peak = (f"CUDA peak {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB"
                    if args.device.startswith("cuda") else
                    f"RSS peak {rss_mib():,.0f} MiB (was {rss_before:,.0f} MiB before this run)")
            print(f"run {run + 1}: {seconds:.2f} s, {len(tiles)} tiles, output {tuple(out.shape)}, {peak}")


if __name__ == "__main__":
    main()
