"""Scaling out: throughput, per-job overhead and dispatch latency over 1, 2 and 4 workers.

    python bench/scale.py --backend local|ray --job sleep|cpu [--workers 1 2 4] [--seconds 0.5]

Every figure goes through the server's own PromptQueue and SQLite JobStore, on toy nodes
(bench/scale_pack): a "checkpoint loader" that sleeps, then a job of `--seconds` that sleeps
(`sleep`: the worker is idle, as when a GPU computes) or does a fixed amount of Python work (`cpu`).

- throughput: `--jobs-per-worker` jobs per worker submitted at once; jobs/s, efficiency against
  the ideal N / seconds, and per-job overhead = wall × N / jobs − seconds;
- latency: one short job at a time on warm workers, submit → its first progress event
  (median, p95);
- model loads: a mixed run over max(2, N) checkpoints with uneven job lengths, affinity on and
  off, each on fresh workers; the loads the workers report.

Ray runs on a local cluster started here (`num_cpus` = the most workers asked for), with one
CPU worker per `--workers`; a real cluster would be joined with `ray.init(address=...)`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.backends import create_backend  # noqa: E402
from engine.config import EngineConfig, build_executor  # noqa: E402
from engine.jobstore import Job, JobStore  # noqa: E402
from engine.queue import PromptQueue  # noqa: E402

PACK = Path(__file__).resolve().parent / "scale_pack"
sys.path.insert(0, str(PACK))
from scale_nodes import spin  # noqa: E402

SPEED = 0  # spins per second of one core, measured in main() for cpu jobs


class Clock:
    """Publish callback: when each prompt was submitted, first reported progress, and finished."""

    def __init__(self) -> None:
        self.submitted: dict[str, float] = {}
        self.first_progress: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.changed = threading.Condition()

    def __call__(self, event, data, client_id) -> None:
        prompt_id, now = data.get("prompt_id"), time.perf_counter()
        if event == "progress":
            self.first_progress.setdefault(prompt_id, now)
        elif event == "executing" and data.get("node") is None:
            with self.changed:
                self.done[prompt_id] = now
                self.changed.notify_all()

    def wait(self, prompt_ids, timeout: float = 600.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: all(p in self.done for p in prompt_ids), timeout):
                raise TimeoutError(f"{sum(p not in self.done for p in prompt_ids)} jobs did not finish")


def spins_per_second() -> int:
    """How many rounds of the pack's `spin` one core does per second here (best of five)."""
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        spin(200_000)
        best = max(best, 200_000 / (time.perf_counter() - started))
    return int(best)


def job_prompt(kind: str, seconds: float, seed: int, ckpt: str = "base.safetensors", steps: int = 10) -> dict:
    return {"1": {"class_type": "ScaleLoader", "inputs": {"ckpt_name": ckpt, "load_seconds": 0.3}},
            "2": {"class_type": "ScaleJob", "inputs": {"model": ["1", 0], "kind": kind, "seconds": seconds,
                                                       "steps": steps, "seed": seed, "spins_per_second": SPEED}}}


@contextmanager
def running_queue(backend: str, workers: int, folder: Path, affinity: bool = True):
    config = EngineConfig(models_dir=folder / "models", input_dir=folder / "input", output_dir=folder / "output",
                          temp_dir=folder / "temp", extension_dirs=[PACK], node_packages=())
    executor = build_executor(config)
    clock = Clock()
    store = JobStore(folder / f"queue-{time.monotonic_ns()}.sqlite3")
    queue = PromptQueue(create_backend(backend, executor, config, workers=workers), store, clock,
                        validator=executor, affinity=affinity)
    queue.start()
    try:
        yield queue, clock
    finally:
        queue.stop()
        store.close()


def submit(queue: PromptQueue, clock: Clock, prompt: dict, prompt_id: str) -> str:
    clock.submitted[prompt_id] = time.perf_counter()
    queue.submit(Job(prompt_id=prompt_id, number=0, prompt=prompt, outputs_to_execute=["2"]))
    return prompt_id


def measure(args, workers: int, folder: Path) -> dict:
    with running_queue(args.backend, workers, folder) as (queue, clock):
        warm = [submit(queue, clock, job_prompt(args.job, 0.01, seed=100_000 + i), f"warm-{i}")
                for i in range(workers * 2)]
        clock.wait(warm)
        count = workers * args.jobs_per_worker
        started = time.perf_counter()
        ids = [submit(queue, clock, job_prompt(args.job, args.seconds, seed=i), f"t-{i}") for i in range(count)]
        clock.wait(ids)
        wall = time.perf_counter() - started
        latencies = []
        for i in range(args.latency_jobs):
            prompt_id = submit(queue, clock, job_prompt(args.job, 0.01, seed=1000 + i, steps=1), f"l-{i}")
            clock.wait([prompt_id])
            latencies.append(clock.first_progress[prompt_id] - clock.submitted[prompt_id])
    ideal = workers / args.seconds
    return {"workers": workers, "jobs": count, "wall": wall, "throughput": count / wall, "ideal": ideal,
            "efficiency": count / wall / ideal, "overhead": wall * workers / count - args.seconds,
            "latency_median": statistics.median(latencies),
            "latency_p95": statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0],
            "loads_on": model_loads(args, workers, folder, True),
            "loads_off": model_loads(args, workers, folder, False)}


def model_loads(args, workers: int, folder: Path, affinity: bool) -> int:
    """Total checkpoint loads over a mixed run, on fresh workers."""
    checkpoints = [f"model-{c}.safetensors" for c in "abcd"[:max(2, workers)]]
    lengths = random.Random(7)
    with running_queue(args.backend, workers, folder, affinity) as (queue, clock):
        ids = [submit(queue, clock, job_prompt(args.job, args.seconds * lengths.uniform(0.3, 1.7), seed=i,
                                               ckpt=checkpoints[i % len(checkpoints)]), f"m-{i}")
               for i in range(len(checkpoints) * 3)]
        clock.wait(ids)
        return sum(sum(w.get("model_loads", {}).values()) for w in queue.workers())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--job", choices=("sleep", "cpu"), default="sleep")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one job (default 0.5)")
    parser.add_argument("--jobs-per-worker", type=int, default=4)
    parser.add_argument("--latency-jobs", type=int, default=20)
    args = parser.parse_args(argv)
    global SPEED
    SPEED = spins_per_second() if args.job == "cpu" else 0
    if args.backend == "ray":
        import ray

        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False)
    print(f"backend={args.backend} job={args.job} seconds={args.seconds} jobs/worker={args.jobs_per_worker} "
          f"spins/s={SPEED}")
    print("| workers | jobs | wall s | jobs/s | ideal jobs/s | efficiency | overhead s/job "
          "| submit→progress median ms | p95 ms | loads affinity on | off |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            row = measure(args, workers, Path(tmp))
            print(f"| {workers} | {row['jobs']} | {row['wall']:.2f} | {row['throughput']:.2f} | {row['ideal']:.2f} "
                  f"| {row['efficiency']:.0%} | {row['overhead']:.3f} | {row['latency_median'] * 1000:.1f} "
                  f"| {row['latency_p95'] * 1000:.1f} | {row['loads_on']} | {row['loads_off']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
