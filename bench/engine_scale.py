"""Engine overhead on large toy graphs: validation, scheduling + execution per node, cached re-runs.

    python bench/engine_scale.py [--sizes 100 1000 10000] [--repeat 3]

Two shapes per size: a chain (each node reads the previous one) and a fan-in (leaves reduced
pairwise by a binary tree of Add nodes). Nodes do trivial work, so the figures are the engine's
own cost. Targets on the 2-core CI machine: 10,000 nodes validated and scheduled in < 0.5 s,
per-node overhead < 50 µs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cache import OutputCache  # noqa: E402
from engine.context import RunContext  # noqa: E402
from engine.declare import NodeResult, Out, node  # noqa: E402
from engine.execute import Executor  # noqa: E402
from engine.registry import NodeRegistry  # noqa: E402
from engine.types import Int, Link  # noqa: E402
from engine.workflow import Workflow  # noqa: E402


@node("BenchConst", outputs=[Out("INT")])
class BenchConst:
    value = Int(0, min=-10**9, max=10**9)

    def run(self, ctx: RunContext, value):
        return (value,)


@node("BenchInc", outputs=[Out("INT")])
class BenchInc:
    value = Link("INT")
    step = Int(1, min=-100, max=100)

    def run(self, ctx: RunContext, value, step):
        return (value + step,)


@node("BenchAdd", outputs=[Out("INT")])
class BenchAdd:
    a = Link("INT")
    b = Link("INT")

    def run(self, ctx: RunContext, a, b):
        return (a + b,)


@node("BenchSink", output_node=True)
class BenchSink:
    value = Link("INT")

    def run(self, ctx: RunContext, value):
        return NodeResult(ui={"value": [value]})


def chain(n: int) -> dict:
    graph = {"1": {"class_type": "BenchConst", "inputs": {"value": 1}}}
    for i in range(2, n):
        graph[str(i)] = {"class_type": "BenchInc", "inputs": {"value": [str(i - 1), 0], "step": 1}}
    graph[str(n)] = {"class_type": "BenchSink", "inputs": {"value": [str(n - 1), 0]}}
    return graph


def fan_in(n: int) -> dict:
    leaves = n // 2
    graph = {str(i): {"class_type": "BenchConst", "inputs": {"value": i}} for i in range(1, leaves + 1)}
    layer, next_id = [str(i) for i in range(1, leaves + 1)], leaves + 1
    while len(layer) > 1:
        merged = []
        for a, b in zip(layer[::2], layer[1::2]):
            graph[str(next_id)] = {"class_type": "BenchAdd", "inputs": {"a": [a, 0], "b": [b, 0]}}
            merged.append(str(next_id))
            next_id += 1
        if len(layer) % 2:
            merged.append(layer[-1])
        layer = merged
    graph[str(next_id)] = {"class_type": "BenchSink", "inputs": {"value": [layer[0], 0]}}
    return graph


def measure(graph: dict, repeat: int) -> dict:
    registry = NodeRegistry([BenchConst, BenchInc, BenchAdd, BenchSink])
    validate_s, first_s, cached_s, node_s = [], [], [], []
    for _ in range(repeat):
        executor = Executor(registry, cache=OutputCache(max_entries=len(graph) * 2))
        workflow = Workflow.from_api(graph)
        started = time.perf_counter()
        compiled = executor.compile(workflow)
        validate_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        run = executor.run(compiled)
        first_s.append(time.perf_counter() - started)
        assert run.status == "success" and len(run.ran) == len(graph)
        node_s.append(sum(r.seconds for r in run.report.values()))
        started = time.perf_counter()
        again = executor.execute(Workflow.from_api(graph))
        cached_s.append(time.perf_counter() - started)
        assert again.ran == []
    n = len(graph)
    first, inside = statistics.median(first_s), statistics.median(node_s)
    return {"nodes": n, "validate_s": statistics.median(validate_s), "first_run_s": first,
            "overhead_us": (first - inside) / n * 1e6, "total_us": first / n * 1e6,
            "validate_and_schedule_s": statistics.median(validate_s) + (first - inside),
            "cached_rerun_s": statistics.median(cached_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    header = (f"{'shape':8} {'nodes':>6} {'validate s':>11} {'val+sched s':>12} {'run s':>8} "
              f"{'overhead µs/node':>17} {'total µs/node':>14} {'cached re-run s':>16}")
    print(header)
    print("-" * len(header))
    for shape, build in (("chain", chain), ("fan-in", fan_in)):
        for size in args.sizes:
            m = measure(build(size), args.repeat)
            print(f"{shape:8} {m['nodes']:>6} {m['validate_s']:>11.4f} {m['validate_and_schedule_s']:>12.4f} "
                  f"{m['first_run_s']:>8.4f} {m['overhead_us']:>17.1f} {m['total_us']:>14.1f} "
                  f"{m['cached_rerun_s']:>16.4f}")
    print("\nval+sched = validation + all engine work of the first run except the nodes' own run() time;"
          "\noverhead µs/node = engine time per executed node (keys, events, cache, scheduling).")


if __name__ == "__main__":
    main()
