"""What a few-step run costs against the default 20-step one, on the same checkpoint.

    python bench/few_steps.py [--full-size] [--size 256] [--repeat 3]

One in-process Executor runs text-to-image with KSampler as shipped (euler, normal, 20 steps, cfg 8)
and LCM-style (ModelSamplingDiscrete lcm, the lcm sampler, sgm_uniform, 4 steps, at cfg 1.5 and at
cfg 1, which skips the negative pass). Each repeat changes the seed, so KSampler, VAEDecode and
PreviewImage re-run while the loader and the prompts stay cached. Prints the CPU model (lscpu),
the median seconds of KSampler alone and of the whole prompt, and the UNet evaluations per run.
The built-in tiny model by default; `--full-size` uses the full-size random SD1.5 checkpoint of
`bench/vs_diffusers.py` (random weights: the timings hold, the images mean nothing).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from full_size import bench_executor  # noqa: E402

# (label, steps, cfg, sampler, scheduler, prediction type set by ModelSamplingDiscrete or None)
STYLES = [
    ("default: euler/normal, 20 steps, cfg 8", 20, 8.0, "euler", "normal", None),
    ("LCM-style: lcm/sgm_uniform, 4 steps, cfg 1.5", 4, 1.5, "lcm", "sgm_uniform", "lcm"),
    ("LCM-style: lcm/sgm_uniform, 4 steps, cfg 1", 4, 1.0, "lcm", "sgm_uniform", "lcm"),
]


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def workflow(checkpoint: str, size: int, seed: int, steps: int, cfg: float, sampler: str, scheduler: str,
             prediction: str | None) -> dict:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dawn", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, watermark", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler,
            "scheduler": scheduler, "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
            "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    }
    if prediction is not None:
        graph["11"] = {"class_type": "ModelSamplingDiscrete",
                       "inputs": {"model": ["4", 0], "sampling": prediction, "zsnr": False}}
        graph["3"]["inputs"]["model"] = ["11", 0]
    return graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true", help="the full-size random SD1.5 checkpoint")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from engine.workflow import Workflow

    executor, checkpoint = bench_executor(args.full_size)
    print(f"CPU: {cpu_model()}; torch threads {__import__('torch').get_num_threads()}")
    print(f"{checkpoint}, {args.size}x{args.size}, median of {args.repeat} runs (after one warm-up run each)\n")
    print(f"{'style':48} {'UNet evals':>10} {'KSampler s':>11} {'prompt s':>9} {'vs default':>10}")
    print("-" * 92)
    baseline = None
    for index, (label, steps, cfg, sampler, scheduler, prediction) in enumerate(STYLES):
        sampler_s, prompt_s = [], []
        for run in range(args.repeat + 1):
            seed = 1000 * index + run
            started = time.perf_counter()
            result = executor.execute(Workflow.from_api(
                workflow(checkpoint, args.size, seed, steps, cfg, sampler, scheduler, prediction)))
            total = time.perf_counter() - started
            assert result.status == "success", result.error
            if run:  # the first run of each style loads or patches what it needs
                sampler_s.append(result.report["3"].seconds)
                prompt_s.append(total)
        median = statistics.median(sampler_s)
        baseline = baseline or median
        evals = steps * (1 if cfg == 1.0 else 2)
        print(f"{label:48} {evals:>10} {median:>11.3f} {statistics.median(prompt_s):>9.3f} "
              f"{median / baseline:>9.2f}x")


if __name__ == "__main__":
    main()
