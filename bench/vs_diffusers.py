"""Text-to-image on a full-size SD1.5-architecture checkpoint: our engine against diffusers.

    python bench/vs_diffusers.py [--sizes 256 512] [--steps 20 8] [--variants ...]

Same file (a random-weight SD1.5 checkpoint in the single-file layout, generated once into
bench/.cache/), same prompt, seed, size and steps, euler / normal, CFG 7:
- `diffusers`, `diffusers-bf16`: `StableDiffusionPipeline.from_single_file` (its defaults: fp32;
  and torch_dtype=bfloat16) with `EulerDiscreteScheduler`, configs from a local folder.
- `ours-cli`: `python -m engine run` on the equivalent workflow at our defaults, the whole command timed.
- `ours`, `ours-fp32`: the same workflow through an in-process Executor (defaults; precision fp32),
  followed by bare forwards of the loaded UNet on the same batch (2: CFG), to measure the
  sampler's per-step overhead over the UNet itself, and by the same KSampler run with a stand-in
  UNet that returns its input: the loop's own cost per step, which a loaded machine cannot hide
  in the noise of two separately timed UNet calls.
Each variant runs in its own process, so peak RSS (getrusage maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ["HF_HUB_OFFLINE"] = "1"  # diffusers must never reach a hub: configs come from a local folder

from full_size import CACHE_DIR, CHECKPOINT_NAME, MODELS_DIR, diffusers_config_folder, ensure_full_size_checkpoint  # noqa: E402

PROMPT = "a photograph of an astronaut riding a horse on the moon, detailed, sharp focus"
NEGATIVE = "blurry, low quality, watermark"
SEED, CFG = 42, 7.0
VARIANTS = ("diffusers", "diffusers-bf16", "ours-cli", "ours", "ours-fp32")
RESULT_TAG = "BENCH-RESULT "


def workflow(size: int, steps: int) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT_NAME}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": SEED, "steps": steps, "cfg": CFG, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
            "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": f"bench_{size}"}},
    }


def peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def step_seconds(stamps: list[float]) -> float:
    """Median time between consecutive per-step callbacks (the first step, with its warm-up, has none before it)."""
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return statistics.median(gaps) if gaps else float("nan")


# --- workers: each runs in its own process and prints one RESULT line -------------------------------------

def run_diffusers(size: int, steps: int, precision: str) -> dict:
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    kwargs = {"torch_dtype": torch.bfloat16} if precision == "bf16" else {}
    started = time.perf_counter()
    pipe = StableDiffusionPipeline.from_single_file(
        str(MODELS_DIR / "checkpoints" / CHECKPOINT_NAME), config=str(diffusers_config_folder()),
        local_files_only=True, safety_checker=None, requires_safety_checker=False, **kwargs)
    load = time.perf_counter() - started
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    stamps: list[float] = []

    def on_step(_pipe, _i, _t, kwargs):
        stamps.append(time.perf_counter())
        return kwargs

    started = time.perf_counter()
    image = pipe(PROMPT, negative_prompt=NEGATIVE, height=size, width=size, num_inference_steps=steps,
                 guidance_scale=CFG, generator=torch.Generator().manual_seed(SEED),
                 callback_on_step_end=on_step).images[0]
    image.save(CACHE_DIR / "output" / f"diffusers_{precision}_{size}.png")
    run = time.perf_counter() - started
    return {"load_s": load, "step_s": step_seconds(stamps), "end_to_end_s": load + run,
            "peak_rss": peak_rss_bytes(), "precision": precision}


def run_ours(size: int, steps: int, precision: str, bare_calls: int) -> dict:
    import torch

    from engine.config import EngineConfig, build_executor, build_registry
    from engine.context import RunContext
    from engine.declare import NodeResult, node
    from engine.types import MODEL, Int, Link
    from engine.workflow import Workflow
    from nodes.conditioning.value import CondEntry
    from nodes.sampler_nodes import run_sampler

    class StandInUNet(torch.nn.Module):
        """One weight of the UNet's dtype (the denoiser casts to it); returns its input as the prediction."""

        def __init__(self, dtype: torch.dtype) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1, dtype=dtype), requires_grad=False)

        def forward(self, sample, timestep, encoder_hidden_states, **kwargs):
            return SimpleNamespace(sample=sample)

    @node("BenchBareUNet", output_node=True)
    class BenchBareUNet:
        """Times bare forwards of the model's UNet on a CFG batch (2) of this latent size, then the
        benchmark's KSampler run (same steps, sampler, CFG) around a stand-in UNet."""

        model = Link(MODEL)
        size = Int(512, min=8, max=4096)
        calls = Int(3, min=1, max=100)
        steps = Int(4, min=1, max=1000)

        def run(self, ctx: RunContext, model, size, calls, steps):
            param = next(model.unet.parameters())
            generator = torch.Generator().manual_seed(0)
            sample = torch.randn(2, 4, size // 8, size // 8, generator=generator).to(param.dtype)
            context = torch.randn(2, 77, 768, generator=generator).to(param.dtype)
            timestep = torch.full((2,), 500.0)
            times = []
            with torch.inference_mode():
                for _ in range(calls):
                    started = time.perf_counter()
                    model.unet(sample, timestep, encoder_hidden_states=context)
                    times.append(time.perf_counter() - started)
            stand_in = replace(model, unet=StandInUNet(param.dtype))
            cond = (CondEntry(context[:1].float()),)
            latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}
            loops = []
            for _ in range(3):
                started = time.perf_counter()
                run_sampler(ctx, stand_in, SEED, steps, CFG, "euler", "normal", cond, cond, latent)
                loops.append((time.perf_counter() - started) / steps)
            return NodeResult(ui={"seconds": times, "loop_seconds": loops})

    settings = {} if precision == "auto" else {"precision": precision}
    config = EngineConfig(models_dir=MODELS_DIR, input_dir=CACHE_DIR / "input", output_dir=CACHE_DIR / "output",
                          temp_dir=CACHE_DIR / "temp", extension_dirs=[], settings=settings)
    registry = build_registry(config)
    registry.register(BenchBareUNet)
    executor = build_executor(config, registry)
    stamps: list[float] = []

    def listener(event: str, data: dict) -> None:
        if event == "progress" and data.get("node") == "3":
            stamps.append(time.perf_counter())

    started = time.perf_counter()
    result = executor.execute(Workflow.from_api(workflow(size, steps)), listener=listener)
    end_to_end = time.perf_counter() - started
    assert result.status == "success", result.error
    peak = peak_rss_bytes()
    report = result.report
    probe = executor.execute(Workflow.from_api({
        "4": workflow(size, steps)["4"],
        "u": {"class_type": "BenchBareUNet", "inputs": {"model": ["4", 0], "size": size, "calls": bare_calls,
                                                         "steps": steps}}}))
    assert probe.status == "success" and "4" not in probe.ran, probe.error
    from nodes.models.runtime import runtime_from_settings

    return {"load_s": report["4"].seconds, "encode_s": report["6"].seconds + report["7"].seconds,
            "sample_s": report["3"].seconds, "decode_s": report["8"].seconds, "step_s": step_seconds(stamps),
            "end_to_end_s": end_to_end, "peak_rss": peak,
            "bare_unet_s": statistics.median(probe.outputs["u"]["seconds"]),
            "loop_s": min(probe.outputs["u"]["loop_seconds"]),
            "precision": runtime_from_settings(settings).precision}


def worker_main(args: argparse.Namespace) -> None:
    import torch

    torch.manual_seed(0)
    if args.worker.startswith("diffusers"):
        out = run_diffusers(args.size, args.worker_steps, "bf16" if args.worker.endswith("bf16") else "fp32")
    else:
        out = run_ours(args.size, args.worker_steps, "fp32" if args.worker.endswith("fp32") else "auto",
                       args.bare_calls)
    print(RESULT_TAG + json.dumps(out), flush=True)


# --- the driver: one subprocess per variant ---------------------------------------------------------------

def timed_process(command: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and stdout of a child process."""
    started = time.perf_counter()
    with open(CACHE_DIR / "bench.log", "a") as log:
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        stdout = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}); see {CACHE_DIR / 'bench.log'}")
    return wall, usage.ru_maxrss * 1024, stdout


def measure(variant: str, size: int, steps: int, bare_calls: int) -> dict:
    load_before = os.getloadavg()[0]
    if variant == "ours-cli":
        path = CACHE_DIR / f"vs_diffusers_{size}_{steps}.json"
        path.write_text(json.dumps(workflow(size, steps), indent=1))
        wall, rss, _ = timed_process([sys.executable, "-m", "engine", "run", str(path), "--quiet",
                                      "--models-dir", str(MODELS_DIR), "--output-dir", str(CACHE_DIR / "output"),
                                      "--input-dir", str(CACHE_DIR / "input"), "--temp-dir", str(CACHE_DIR / "temp")])
        out = {"end_to_end_s": wall, "peak_rss": rss}
    else:
        wall, rss, stdout = timed_process([sys.executable, __file__, "--worker", variant, "--size", str(size),
                                           "--worker-steps", str(steps), "--bare-calls", str(bare_calls)])
        out = json.loads(next(line for line in stdout.splitlines() if line.startswith(RESULT_TAG))[len(RESULT_TAG):])
    return {**out, "variant": variant, "process_s": wall, "load_avg": (load_before + os.getloadavg()[0]) / 2}


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(size: int, steps: int, rows: dict[str, dict]) -> None:
    base = rows.get("diffusers")
    print(f"\n{size}×{size}, {steps} steps, euler/normal, CFG {CFG}, batch 1 (UNet batch 2)")
    header = (f"{'variant':15} {'precision':9} {'load s':>7} {'s/step':>7} {'end-to-end s':>13} {'process s':>10} "
              f"{'peak RSS GB':>12} {'e2e ÷ diffusers':>16} {'load avg':>9}")
    print(header)
    print("-" * len(header))
    for name, r in rows.items():
        ratio = r["end_to_end_s"] / base["end_to_end_s"] if base else None
        print(f"{name:15} {r.get('precision', 'auto'):9} {fmt(r.get('load_s'), '7.2f')} {fmt(r.get('step_s'), '7.3f')} "
              f"{r['end_to_end_s']:13.2f} {r['process_s']:10.2f} {r['peak_rss'] / 1e9:12.2f} {fmt(ratio, '16.3f')} "
              f"{r['load_avg']:9.2f}")
    for name, r in rows.items():
        if "bare_unet_s" in r:
            overhead = r["step_s"] / r["bare_unet_s"] - 1
            print(f"{name}: bare UNet forward (batch 2, {r['precision']}) {r['bare_unet_s']:.3f} s; "
                  f"KSampler step {r['step_s']:.3f} s → per-step overhead {overhead * 100:+.1f} %; "
                  f"encode {r['encode_s']:.2f} s, sample {r['sample_s']:.2f} s, decode {r['decode_s']:.2f} s")
            print(f"{name}: the KSampler loop without the UNet {r['loop_s'] * 1e3:.2f} ms/step "
                  f"= {r['loop_s'] / r['bare_unet_s'] * 100:.3f} % of a bare UNet forward")
    for ours, theirs in (("ours", "diffusers-bf16"), ("ours-fp32", "diffusers"), ("ours", "diffusers")):
        if ours in rows and theirs in rows and rows[ours].get("load_s"):
            a, b = rows[ours], rows[theirs]
            print(f"{ours} ({a['precision']}) ÷ {theirs} ({b['precision']}): load {a['load_s'] / b['load_s']:.2f}, "
                  f"step {a['step_s'] / b['step_s']:.2f}, end-to-end {a['end_to_end_s'] / b['end_to_end_s']:.2f}, "
                  f"peak RSS {a['peak_rss'] / b['peak_rss']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 8], help="steps per size (the last repeats)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--bare-calls", type=int, default=3, help="bare UNet forwards timed after our run")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    for folder in ("output", "input", "temp"):
        (CACHE_DIR / folder).mkdir(parents=True, exist_ok=True)
    checkpoint = ensure_full_size_checkpoint()
    diffusers_config_folder()
    with open(checkpoint, "rb") as f:  # into the page cache, so no variant pays for the first disk read
        while f.read(1 << 24):
            pass
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; checkpoint {checkpoint.name} "
          f"({checkpoint.stat().st_size / 1e9:.2f} GB)")
    for i, size in enumerate(args.sizes):
        steps = args.steps[min(i, len(args.steps) - 1)]
        rows = {}
        for variant in args.variants:
            rows[variant] = measure(variant, size, steps, args.bare_calls)
            print(f"  {variant} done: {rows[variant]['end_to_end_s']:.1f} s", file=sys.stderr)
        print_table(size, steps, rows)


if __name__ == "__main__":
    main()
