"""`python server.py`: the ComfyUI-compatible HTTP + WebSocket server.

Binds 127.0.0.1 by default. `--listen [ADDR]` exposes it to the network, and then only with an
access token (`--token`, or one generated and printed at start). The queue and history live in
SQLite under `--user-dir` and survive restarts and crashes: after a crash or kill -9, a prompt
that was running is queued again at its place (up to 3 starts, then recorded as an error), and
Ctrl-C / SIGTERM stop cleanly, putting the running prompt back in the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import secrets
import signal
import sys
from pathlib import Path
from typing import Sequence

from aiohttp import web

from api.app import create_app, tune_garbage_collector
from api.connections import start_server
from api.security import is_loopback_host
from api.state import ServerSettings, build_state
from engine.backends import BACKENDS
from engine.config import COMPILE_MODES, PRECISIONS, EngineConfig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python server.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    net = parser.add_argument_group("network and security")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    net.add_argument("--port", type=int, default=8188, help="port to bind (default 8188; 0 picks a free one)")
    net.add_argument("--listen", nargs="?", const="0.0.0.0", metavar="ADDR",
                     help="listen on ADDR (default 0.0.0.0: every interface); requires a token")
    net.add_argument("--token", help="access token clients must send (Authorization: Bearer TOKEN, or ?token= "
                                     "on GET/WebSocket); generated and printed when --listen is given without one")
    net.add_argument("--front-end", choices=("sdgraph", "comfyui"), default="sdgraph",
                     help="the editor served at / (default sdgraph); comfyui: ComfyUI's own editor, ours then at "
                          '/sdgraph/ (needs pip install ".[comfyui-frontend]")')
    folders = parser.add_argument_group("folders")
    folders.add_argument("--models-dir", default="models",
                         help="checkpoints/, vae/, loras/, embeddings/ (default models)")
    folders.add_argument("--extra-model-paths", metavar="FILE",
                         help="more model folders, in ComfyUI's extra_model_paths.yaml format")
    folders.add_argument("--input-dir", default="input", help="uploads and LoadImage files (default input)")
    folders.add_argument("--output-dir", default="output", help="SaveImage files (default output)")
    folders.add_argument("--temp-dir", default="temp", help="PreviewImage files (default temp)")
    folders.add_argument("--user-dir", default="user", help="the queue and history database (default user)")
    folders.add_argument("--extensions", action="append", metavar="DIR",
                         help="node pack folder (repeatable; default custom_nodes)")
    folders.add_argument("--no-builtin-nodes", action="store_true",
                         help="load only the extension node packs, not the built-in nodes package")
    engine = parser.add_argument_group("engine and limits")
    engine.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="model weights precision (default auto: fp16 on GPU; bf16 on CPUs with native "
                             "bf16, else fp32); a workflow's extra_data.settings overrides it")
    engine.add_argument("--compile", choices=COMPILE_MODES,
                        help="run the UNet through OpenVINO, traced once and cached on disk (default $SDGRAPH_COMPILE, "
                             "else auto: on CPUs without native bf16); a workflow's extra_data.settings overrides it")
    engine.add_argument("--history-max-items", type=int, default=10_000,
                        help="finished prompts kept in the history (default 10000)")
    engine.add_argument("--max-upload-mb", type=float, default=64, help="largest uploaded file (default 64)")
    engine.add_argument("--max-body-mb", type=float, default=32, help="largest JSON request body (default 32)")
    engine.add_argument("--max-image-megapixels", type=float, default=64,
                        help="largest uploaded or converted image (default 64)")
    engine.add_argument("--max-latent-megapixels", type=float, default=64,
                        help="largest image or latent a node may allocate, width x height x batch in Mi pixels "
                             "(default 64: 4096x4096x4); a request may lower it, never raise it")
    engine.add_argument("--header-timeout", type=float, default=10, metavar="SECONDS",
                        help="close a connection whose request head takes longer (default 10)")
    engine.add_argument("--body-timeout", type=float, default=60, metavar="SECONDS",
                        help="close a connection whose request body stalls longer (default 60)")
    engine.add_argument("--max-connections-per-address", type=int, default=128, metavar="N",
                        help="open connections per client address, IPv6 per /64 (default 128; behind a reverse "
                             "proxy every client has the proxy's address)")
    engine.add_argument("--max-connections", type=int, default=1000, metavar="N",
                        help="open connections in all (default 1000)")
    engine.add_argument("--verbose", action="store_true", help="log every request")
    scale = parser.add_argument_group("workers (see the README: Running on a Ray cluster)")
    scale.add_argument("--backend", choices=BACKENDS, default="local",
                       help="where prompts run: local (in this process, the default) or ray (a Ray cluster; "
                            'needs pip install ".[ray]")')
    scale.add_argument("--ray-address", default="auto", metavar="auto|HOST:PORT|local",
                       help="the Ray cluster to join (default auto: the one `ray start` runs here); local starts one")
    scale.add_argument("--workers", type=int, metavar="N",
                       help="N CPU workers (default with ray: one worker per GPU of the cluster, or one per "
                            "machine without GPUs; local: 1)")
    scale.add_argument("--shared-output-dir", action="store_true",
                       help="ray: --output-dir and --temp-dir are shared storage every worker mounts at the same "
                            "path; workers write there (default: workers send their files back to the server)")
    return parser.parse_args(argv)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return is_loopback_host(address)


class StartupError(Exception):
    """A command-line choice the server cannot honour; the message says what to do."""


def comfyui_front_end_dir() -> Path:
    """The static files of ComfyUI's editor, from the optional `comfyui-frontend-package` (GPL-3.0, never vendored)."""
    try:
        import comfyui_frontend_package
    except ImportError:
        raise StartupError("--front-end comfyui needs ComfyUI's editor: pip install \".[comfyui-frontend]\" "
                           "(or pip install comfyui-frontend-package==1.45.15)") from None
    static = Path(comfyui_frontend_package.__file__).resolve().parent / "static"
    if not (static / "index.html").is_file():
        raise StartupError(f"comfyui-frontend-package has no static/index.html in {static.parent}: reinstall it")
    return static


def configure(args: argparse.Namespace) -> tuple[EngineConfig, ServerSettings]:
    front_end_dir = comfyui_front_end_dir() if args.front_end == "comfyui" else None
    host = args.listen or args.host
    token = args.token
    if not _is_loopback(host) and not token:
        token = secrets.token_urlsafe(24)
        print(f"access token (generated; pass --token to choose one): {token}", flush=True)
    config = EngineConfig(models_dir=Path(args.models_dir), input_dir=Path(args.input_dir),
                          output_dir=Path(args.output_dir), temp_dir=Path(args.temp_dir),
                          settings={"precision": args.precision, "compile": args.compile,
                                    "max_latent_pixels": int(args.max_latent_megapixels * 2**20)},
                          extra_model_paths=Path(args.extra_model_paths) if args.extra_model_paths else None)
    if args.extensions:
        config.extension_dirs = [Path(p) for p in args.extensions]
    if args.no_builtin_nodes:
        config.node_packages = ()
    settings = ServerSettings(
        host=host, port=args.port, token=token, user_dir=Path(args.user_dir),
        max_history=args.history_max_items, max_body_bytes=int(args.max_body_mb * 2**20),
        max_upload_bytes=int(args.max_upload_mb * 2**20), max_image_pixels=int(args.max_image_megapixels * 2**20),
        loopback_only=_is_loopback(host), backend=args.backend, ray_address=args.ray_address,
        workers=args.workers, shared_outputs=args.shared_output_dir, header_timeout=args.header_timeout,
        body_timeout=args.body_timeout, max_connections_per_address=args.max_connections_per_address,
        max_connections=args.max_connections, front_end_dir=front_end_dir)
    return config, settings


async def serve(app: web.Application, settings: ServerSettings, access_log: logging.Logger | None) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly (a running prompt goes back to the queue)."""
    runner = await start_server(app, settings, settings.host, settings.port, access_log)
    try:
        port = runner.addresses[0][1] if runner.addresses else settings.port
        shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        shown = f"[{shown}]" if ":" in shown else shown
        # The token is printed once, by `configure`, and only when it was generated.
        print(f"sdgraph server: http://{shown}:{port}/" + (" (open it with ?token=TOKEN)" if settings.token else ""),
              flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        print("stopping…", flush=True)
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config, settings = configure(args)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = create_app(build_state(config, settings))
    tune_garbage_collector()
    try:
        asyncio.run(serve(app, settings, logging.getLogger("aiohttp.access") if args.verbose else None))
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
