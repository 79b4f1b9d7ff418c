"""The server's latency for a simple GET while heavy requests are in flight (loopback only).

    python bench/server_latency.py [--samples 60] [--history 10000] [--nodes 100000]

A server process (in-process worker, bench toy nodes, a history of `--history` finished prompts
written straight into its store) is started on a free loopback port. For each heavy request —
`GET /history` (everything, three at a time), a `--nodes`-node graph POSTed to `/prompt` (its last
input invalid, so it is parsed and validated in full but never runs), a PNG carrying a 20,000-node
prompt sent to `POST /workflow/convert`, and the hostile PNG of issue 20 (an A1111 `parameters` text
whose last line is 60,000 letters without a colon) sent there too — `GET /prompt` is timed
`--samples` times while the heavy request is kept in flight. Prints p50/p95 per case and the CPU
model. Target: p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from bench.engine_scale import BenchConst, BenchInc, BenchSink, chain  # noqa: E402

TARGET_P95_MS = 100.0


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                "unknown")


def fill_history(database: Path, entries: int) -> None:
    """`entries` finished prompts of about 1.5 KB each, as a long-used server would hold."""
    from engine.jobstore import Job, JobStore

    store = JobStore(database, max_history=entries)
    store._db.execute("PRAGMA synchronous=OFF")  # filling only: durability is not what is measured
    prompt = chain(8)
    outputs = {"8": {"images": [{"filename": f"ComfyUI_{i:05d}_.png", "subfolder": "", "type": "output"}
                                for i in range(8)]}}
    for i in range(entries):
        store.add(Job(prompt_id=f"h{i:06d}", number=0, prompt=prompt, extra_data={"client_id": "bench"},
                      outputs_to_execute=["8"]))
        store.claim_next()
        store.finish(f"h{i:06d}", "success", outputs, [["execution_start", {"prompt_id": f"h{i:06d}"}]])
    store.close()


def serve(port: int, folder: Path) -> None:
    """The server process: bench nodes, a local worker, the store in `folder`."""
    from aiohttp import web

    from api.app import create_app, tune_garbage_collector
    from api.state import ServerSettings, build_state
    from engine.config import EngineConfig
    from engine.registry import NodeRegistry

    config = EngineConfig(models_dir=folder / "models", input_dir=folder / "input", output_dir=folder / "output",
                          temp_dir=folder / "temp", extension_dirs=[], node_packages=())
    settings = ServerSettings(port=port, user_dir=folder / "user", max_history=10**6)
    state = build_state(config, settings, NodeRegistry([BenchConst, BenchInc, BenchSink]))
    app = create_app(state)
    tune_garbage_collector()  # as server.py does
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def png_with_prompt(nodes: int) -> bytes:
    return png_with_text("prompt", json.dumps(chain(nodes)))


def png_with_text(key: str, text: str) -> bytes:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, text)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def invalid_graph(nodes: int) -> dict:
    graph = chain(nodes)
    graph[str(nodes - 1)]["inputs"]["step"] = 1000  # over the maximum: found only by validating everything
    return graph


async def time_get(session: aiohttp.ClientSession, base: str) -> float:
    started = time.perf_counter()
    async with session.get(base + "/prompt") as response:
        await response.read()
        assert response.status == 200
    return (time.perf_counter() - started) * 1000


async def latency_under(session: aiohttp.ClientSession, base: str, heavy, concurrency: int, samples: int) -> dict:
    """GET /prompt latencies (ms) while `concurrency` copies of `heavy` (a request factory) run back to back."""
    stop = asyncio.Event()
    heavy_done = 0

    async def keep_busy() -> None:
        nonlocal heavy_done
        while not stop.is_set():
            await heavy()
            heavy_done += 1

    workers = [asyncio.ensure_future(keep_busy()) for _ in range(concurrency)]
    await asyncio.sleep(0.3)
    times = []
    for _ in range(samples):
        times.append(await time_get(session, base))
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(*workers)
    times.sort()
    return {"p50": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))], "max": times[-1],
            "heavy_done": heavy_done}


async def measure(base: str, args) -> list[tuple[str, dict]]:
    big_graph = json.dumps({"prompt": invalid_graph(args.nodes)}).encode()
    png = png_with_prompt(20_000)
    hostile_png = png_with_text("parameters", "a cat\n" + "a" * 60_000)  # 35 s of regex backtracking once
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def history() -> None:
            async with session.get(base + "/history") as response:
                await response.read()

        async def post_graph() -> None:
            async with session.post(base + "/prompt", data=big_graph) as response:
                await response.read()
                assert response.status == 400, response.status

        async def convert() -> None:
            async with session.post(base + "/workflow/convert", data=png) as response:
                await response.read()
                assert response.status == 200, response.status

        async def convert_a1111() -> None:
            async with session.post(base + "/workflow/convert", data=hostile_png) as response:
                await response.read()
                assert response.status == 200, response.status

        results = [("idle", await latency_under(session, base, lambda: asyncio.sleep(0.05), 1, args.samples))]
        results.append((f"GET /history ({args.history:,} entries) x3",
                        await latency_under(session, base, history, 3, args.samples)))
        results.append((f"POST /prompt ({args.nodes:,} nodes)",
                        await latency_under(session, base, post_graph, 1, args.samples)))
        results.append(("POST /workflow/convert (PNG, 20,000-node prompt)",
                        await latency_under(session, base, convert, 1, args.samples)))
        results.append(("POST /workflow/convert (PNG, 60,000-letter A1111 line)",
                        await latency_under(session, base, convert_a1111, 1, args.samples)))
        return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        fill_history(folder / "user" / "queue.sqlite3", args.history)
        print(f"history of {args.history:,} entries written in {time.perf_counter() - started:.1f} s")
        port = free_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(folder)])
        try:
            wait_up(port)
            results = asyncio.run(measure(f"http://127.0.0.1:{port}", args))
        finally:
            server.terminate()
            server.wait(30)
    print(f"CPU: {cpu_model()}")
    print(f"GET /prompt latency while each heavy request is in flight ({args.samples} samples; target p95 < "
          f"{TARGET_P95_MS:.0f} ms)")
    print(f"| {'heavy request':<54} | p50 ms | p95 ms | max ms | heavy requests done |")
    print(f"|{'-' * 56}|-------:|-------:|-------:|--------------------:|")
    for name, r in results:
        print(f"| {name:<54} | {r['p50']:6.1f} | {r['p95']:6.1f} | {r['max']:6.1f} | {r['heavy_done']:19d} |")


if __name__ == "__main__":
    main()
