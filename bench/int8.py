"""`--precision int8` on the full-size SD1.5 layout: per-step speed, closeness to fp32, and end to end.

    python bench/int8.py [--sizes 256 512] [--repeats 3] [--image-steps 8] [--e2e-size 512 --e2e-steps 20]

Three parts, each optional (`--parts unet image e2e`), on the random-weight SD1.5 checkpoint of
bench/full_size.py:
- `unet`: one UNet call on the CFG batch (2) at each size, fp32 eager, bf16 (emulated, and slower than
  fp32, where the CPU lacks native bf16 or oneDNN is capped below it), int8 eager (the layers of
  nodes.models.quantize) and int8-ov (the graph quantized by NNCF and run by OpenVINO, `compile=on`;
  where the bench's cache has no graph for these weights, the first call calibrates on the eager layers
  and the graph is quantized after it), each through the sampling path, interleaved, `--repeats` times;
  the minimum and median seconds, and each output's SNR
  against fp32's on the same inputs (`--precisions` picks among them).
- `image`: the whole txt2img workflow at fp32 and int8, same seed: the decoded images' PSNR.
- `demo`: the demo model's prompt accuracy (tests/nodes/test_demo_model.py's 14 prompts and analysis,
  euler, dpmpp_2m, ddim) at fp32, int8 (eager layers) and int8-ov (the quantized graph, after a calibrating
  run), and each image's PSNR against its fp32 twin.
- `e2e`: diffusers' fp32 pipeline (bench/vs_diffusers.py's) and our runs (`ours-int8`, `ours-fp32`,
  `ours-fp32+compile`: OpenVINO, its graph cached in the bench's folder; `ours-auto`: the defaults, what a
  new user gets), each in its own process, the whole process timed (the ratio the issue's target is about),
  and the start-up: launch to the first step done.

`ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python bench/int8.py ...` runs it as on a CPU without native bf16 (an
Ice Lake's instructions): torch then emulates bf16, and `auto` picks fp32 (nodes.models.runtime).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "nodes"))  # the demo model's accuracy check (test_demo_model.py)
os.environ["HF_HUB_OFFLINE"] = "1"

from full_size import CACHE_DIR, CHECKPOINT_NAME, MODELS_DIR, ensure_full_size_checkpoint  # noqa: E402

RESULT_TAG = "INT8-RESULT "


def snr_db(reference, value) -> float:
    """Signal-to-error ratio of `value` against `reference`, in dB."""
    error = float((value.float() - reference.float()).norm())
    return math.inf if error == 0 else 20 * math.log10(float(reference.float().norm()) / error)


def psnr_db(a, b) -> float:
    """PSNR of two images in [0, 1], in dB."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def load_unet(precision: str):
    """The full-size MODEL handle at `precision`, as CheckpointLoaderSimple loads it."""
    from nodes.loaders import checkpoint_handles
    from nodes.models.checkpoint import load_checkpoint
    from nodes.models.runtime import runtime_from_settings

    runtime = runtime_from_settings({"device": "cpu", "precision": precision})
    loaded = load_checkpoint(MODELS_DIR / "checkpoints" / CHECKPOINT_NAME, dtype=runtime.dtype,
                             device=runtime.device, memory_format=runtime.memory_format)
    return checkpoint_handles(loaded, CHECKPOINT_NAME, runtime.int8)[0]


def unet_part(sizes: list[int], repeats: int, wanted: list[str]) -> None:
    import torch

    from engine.context import InterruptHandle, RunContext
    from engine.paths import Paths
    from nodes.models.compiled import compiled_unet_used
    from nodes.models.patching import model_patches_applied
    from nodes.models.quantize import Int8Weights
    fp32 = load_unet("fp32")
    # the same fp32 weights: less memory
    models = {"fp32": fp32, "int8": replace(fp32, int8=Int8Weights()), "int8-ov": replace(fp32, int8=Int8Weights())}
    if "bf16" in wanted:
        models["bf16"] = load_unet("bf16")
    models = {name: model for name, model in models.items() if name in wanted or name == "fp32"}
    precisions = list(models)
    contexts = {name: RunContext("3", "bench", Paths(), InterruptHandle(), lambda event, data: None,
                                 settings={"compile": "on" if name == "int8-ov" else "off",
                                           "compile_cache_dir": str(CACHE_DIR / "compiled-unet")})
                for name in precisions}
    print(f"\nUNet call, batch 2 (CFG), torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"min / median of {repeats}, interleaved; SNR of the output against fp32's")
    for size in sizes:
        generator = torch.Generator().manual_seed(0)
        sample = torch.randn(2, 4, size // 8, size // 8, generator=generator)
        context = torch.randn(2, 77, 768, generator=generator)
        timestep = torch.full((2,), 500.0)
        times: dict[str, list[float]] = {p: [] for p in precisions}
        outputs = {}
        first_call = {}
        with torch.inference_mode():
            for repeat in range(repeats + 1):  # the first round warms up (and packs the int8 weights)
                for precision, model in models.items():
                    dtype = next(model.unet.parameters()).dtype
                    started = time.perf_counter()
                    with model_patches_applied(model) as unet, compiled_unet_used(contexts[precision], model):
                        out = unet(sample.to(dtype), timestep, encoder_hidden_states=context.to(dtype)).sample
                    seconds = time.perf_counter() - started
                    if repeat == 0:
                        first_call[precision], outputs[precision] = seconds, out.float()
                    else:
                        times[precision].append(seconds)
        base = statistics.median(times["fp32"])
        for precision in precisions:
            median = statistics.median(times[precision])
            snr = snr_db(outputs["fp32"], outputs[precision])
            print(f"  {size}×{size} {precision:7} min {min(times[precision]):7.3f} s  median {median:7.3f} s  "
                  f"×fp32 {median / base:5.2f}  first call {first_call[precision]:7.3f} s  SNR {snr:6.1f} dB")


def image_part(size: int, steps: int) -> None:
    import torch
    from vs_diffusers import workflow

    from engine.config import EngineConfig, build_executor, build_registry
    from engine.workflow import Workflow

    images = {}
    for precision in ("fp32", "int8"):
        config = EngineConfig(models_dir=MODELS_DIR, input_dir=CACHE_DIR / "input", output_dir=CACHE_DIR / "output",
                              temp_dir=CACHE_DIR / "temp", extension_dirs=[], settings={"precision": precision})
        executor = build_executor(config, build_registry(config))
        graph = workflow(size, steps)
        graph["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
        result = executor.execute(Workflow.from_api(graph))
        assert result.status == "success", result.error
        import numpy as np
        from PIL import Image

        saved = result.outputs["9"]["images"][0]
        path = CACHE_DIR / "temp" / saved.get("subfolder", "") / saved["filename"]
        images[precision] = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255)
    print(f"\nwhole txt2img, {size}×{size}, {steps} steps euler: int8 image vs fp32 image PSNR "
          f"{psnr_db(images['fp32'], images['int8']):.1f} dB (8-bit PNGs; random weights: the images are noise)")


def demo_part(runs: list[str]) -> None:
    """tests/nodes/test_demo_model.py's check (its 14 prompts, workflow and analysis) in process, for each
    `precision:sampler` of `runs`, and each image's PSNR against its fp32 twin where that ran too."""
    import numpy as np
    import torch
    from PIL import Image
    from test_demo_model import REQUESTS, SAMPLERS, analyse, batch_workflow
    from test_precision_int8 import CALIBRATION_REQUEST

    from engine.config import EngineConfig, build_executor, build_registry
    from engine.workflow import Workflow

    schedulers = dict(SAMPLERS)
    images: dict[tuple[str, str], list] = {}
    executors: dict = {}
    print("\ndemo model (demo-shapes), 14 prompts each, drawn as asked:")
    for run in runs:
        precision, sampler = run.split(":")
        graph = batch_workflow(sampler, schedulers[sampler])
        for node in graph.values():
            if node["class_type"] == "SaveImage":
                node["class_type"], node["inputs"] = "PreviewImage", {"images": node["inputs"]["images"]}
        graphs = CACHE_DIR / "demo-int8-graphs"
        settings = {"precision": precision.removesuffix("-ov"),
                    "compile": "on" if precision.endswith("-ov") else "off", "compile_cache_dir": str(graphs)}
        config = EngineConfig(models_dir=CACHE_DIR / "demo-models", input_dir=CACHE_DIR / "input",
                              output_dir=CACHE_DIR / "output", temp_dir=CACHE_DIR / "temp", extension_dirs=[],
                              settings=settings)
        if precision not in executors:
            executors[precision] = build_executor(config, build_registry(config))
        if precision.endswith("-ov"):  # a first run calibrates on the eager int8 layers and quantizes; the
            shutil.rmtree(graphs, ignore_errors=True)  # measured run, in a fresh executor, samples on the graph;
            calibrating = batch_workflow(sampler, schedulers[sampler], [CALIBRATION_REQUEST], seed_offset=1000)
            assert executors[precision].execute(Workflow.from_api(calibrating)).status == "success"  # held out
            executors[precision] = build_executor(config, build_registry(config))
        started = time.perf_counter()
        result = executors[precision].execute(Workflow.from_api(graph))
        assert result.status == "success", result.error
        drawn = []
        for node_id, node in graph.items():
            if node["class_type"] == "PreviewImage":
                saved = result.outputs[node_id]["images"][0]
                path = CACHE_DIR / "temp" / saved.get("subfolder", "") / saved["filename"]
                drawn.append(np.asarray(Image.open(path).convert("RGB")))
        images[precision, sampler] = drawn
        good = sum(analyse(image, request) is None for image, request in zip(drawn, REQUESTS))
        line = f"  {precision:7} {sampler:9} {good}/{len(REQUESTS)}  ({time.perf_counter() - started:.0f} s)"
        fp32_images = images.get(("fp32", sampler))
        if precision != "fp32" and fp32_images:
            values = [psnr_db(torch.from_numpy(a / 255.0), torch.from_numpy(b / 255.0))
                      for a, b in zip(fp32_images, drawn)]
            line += f"  vs fp32 PSNR: median {statistics.median(values):.1f} dB, min {min(values):.1f} dB"
        print(line, flush=True)


def e2e_worker(variant: str, size: int, steps: int) -> dict:
    from vs_diffusers import run_diffusers, step_seconds, workflow

    if variant == "diffusers":
        return run_diffusers(size, steps, "fp32")
    from engine.config import EngineConfig, build_executor, build_registry
    from engine.workflow import Workflow

    precision, _, compiled = variant.removeprefix("ours-").partition("+")
    settings: dict[str, str] = {"compile_cache_dir": str(CACHE_DIR / "compiled-unet")}
    if precision != "auto":  # auto: the defaults (precision and compile auto)
        settings |= {"precision": precision, "compile": "on" if compiled == "compile" else "off"}
    config = EngineConfig(models_dir=MODELS_DIR, input_dir=CACHE_DIR / "input", output_dir=CACHE_DIR / "output",
                          temp_dir=CACHE_DIR / "temp", extension_dirs=[], settings=settings)
    stamps: list[float] = []
    first_step: list[float] = []  # wall clock, so that the parent can time start-up from the process's launch

    def listener(event: str, data: dict) -> None:
        if event == "progress" and data.get("node") == "3" and "text" not in data:  # not the compile notice
            stamps.append(time.perf_counter())
            first_step.append(time.time())

    started = time.perf_counter()
    executor = build_executor(config, build_registry(config))
    result = executor.execute(Workflow.from_api(workflow(size, steps)), listener=listener)
    assert result.status == "success", result.error
    report = result.report
    return {"end_to_end_s": time.perf_counter() - started, "first_step_wall": first_step[0],
            "load_s": report["4"].seconds,
            "sample_s": report["3"].seconds, "decode_s": report["8"].seconds, "step_s": step_seconds(stamps)}


def e2e_part(size: int, steps: int, variants: list[str]) -> None:
    rows = {}
    for index, variant in enumerate(variants):
        started, launched = time.perf_counter(), time.time()
        child = subprocess.run([sys.executable, __file__, "--worker", variant, "--e2e-size", str(size),
                                "--e2e-steps", str(steps)], cwd=ROOT, capture_output=True, text=True)
        if child.returncode != 0:
            raise RuntimeError(f"{variant} failed:\n{child.stderr[-3000:]}")
        out = json.loads(next(line for line in child.stdout.splitlines()
                              if line.startswith(RESULT_TAG))[len(RESULT_TAG):])
        if "first_step_wall" in out:
            out["first_step_s"] = out.pop("first_step_wall") - launched
        name = variant if variant not in rows else f"{variant} #{index}"
        rows[name] = {**out, "process_s": time.perf_counter() - started, "load_avg": os.getloadavg()[0]}
    base = rows.get("diffusers")
    print(f"\nwhole process, {size}×{size}, {steps} steps, euler/normal, CFG 7 (each variant its own process)")
    for name, r in rows.items():
        ratio = f"{r['process_s'] / base['process_s']:.3f}" if base else "-"
        print(f"  {name:20} process {r['process_s']:8.1f} s  first step at {r.get('first_step_s', 0):6.1f} s  "
              f"load {r.get('load_s', 0):6.1f} s  "
              f"s/step {r.get('step_s', 0):6.2f}  decode {r.get('decode_s', 0):6.1f} s  ÷ diffusers {ratio}  "
              f"load avg {r['load_avg']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=("unet", "image", "demo", "e2e"),
                        default=["unet", "image", "demo", "e2e"])
    parser.add_argument("--demo-runs", nargs="+", default=[f"{p}:{s}" for p in ("fp32", "int8", "int8-ov")
                                                            for s in ("euler", "dpmpp_2m", "ddim")],
                        help="precision:sampler pairs (int8-ov: the graph NNCF quantizes, after a calibrating run)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--precisions", nargs="+", default=["bf16", "int8", "int8-ov"],
                        help="the unet part's variants beside fp32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--image-steps", type=int, default=8)
    parser.add_argument("--e2e-size", type=int, default=512)
    parser.add_argument("--e2e-steps", type=int, default=20)
    parser.add_argument("--e2e-variants", nargs="+", default=["diffusers", "ours-int8", "ours-int8+compile"],
                        help="diffusers (fp32) and ours-<precision>, ours-<precision>+compile (OpenVINO; the "
                             "first such run of a size traces the graph, and at int8 quantizes it, into the "
                             "bench's cache; later ones load it)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ensure_full_size_checkpoint()
    if args.worker:
        print(RESULT_TAG + json.dumps(e2e_worker(args.worker, args.e2e_size, args.e2e_steps)), flush=True)
        return
    from bench.model_patches import isa_cap_note

    print(f"CPU: {cpu_model()}{isa_cap_note()}; load average at start {os.getloadavg()[0]:.1f}")
    if "unet" in args.parts:
        unet_part(args.sizes, args.repeats, args.precisions)
    if "image" in args.parts:
        image_part(args.image_size, args.image_steps)
    if "demo" in args.parts:
        demo_part(args.demo_runs)
    if "e2e" in args.parts:
        e2e_part(args.e2e_size, args.e2e_steps, args.e2e_variants)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
