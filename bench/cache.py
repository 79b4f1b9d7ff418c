"""What re-runs cost: a first run, an unchanged re-run, a seed-only change, a prompt-only change.

    python bench/cache.py [--full-size] [--size 256] [--steps 20]

One in-process Executor runs text-to-image four times; the executor's own report says which nodes
ran (and why) and which were cached, and how long each took. The built-in tiny model by default;
`--full-size` uses the full-size random SD1.5 checkpoint of `bench/vs_diffusers.py`.
Expected: a seed-only change re-runs KSampler, VAEDecode and SaveImage only (no model load, no
text encode); a prompt-only change adds that prompt's CLIPTextEncode.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from full_size import bench_executor  # noqa: E402


def workflow(checkpoint: str, size: int, steps: int, seed: int, prompt: str) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, watermark", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
            "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "bench_cache"}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true", help="the full-size random SD1.5 checkpoint")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    from engine.workflow import Workflow

    executor, checkpoint = bench_executor(args.full_size)
    prompt = "a red circle on a blue background"
    runs = [("first run", 42, prompt), ("unchanged re-run", 42, prompt), ("seed-only change", 43, prompt),
            ("prompt-only change", 43, prompt + ", at sunset")]
    print(f"{checkpoint}, {args.size}×{args.size}, {args.steps} steps euler/normal\n")
    header = f"{'run':20} {'total s':>8}  ran (seconds; why)"
    print(header)
    print("-" * 100)
    for name, seed, text in runs:
        started = time.perf_counter()
        result = executor.execute(Workflow.from_api(workflow(checkpoint, args.size, args.steps, seed, text)))
        total = time.perf_counter() - started
        assert result.status == "success", result.error
        ran = [f"{r.class_type} {r.seconds:.2f}" + ("" if name == "first run" else f" ({r.reason})")
               for r in result.report.values() if r.status == "ran"]
        print(f"{name:20} {total:8.2f}  " + ("; ".join(ran) or "nothing"))
        cached = [result.report[n].class_type for n in result.cached]
        print(f"{'':20} {'':8}  cached: {', '.join(cached) or 'nothing'}")


if __name__ == "__main__":
    main()
