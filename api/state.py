"""The server's state: everything a request handler may use, in one explicit object.

`ServerState` holds the engine, durable queue, WebSocket hub and settings; handlers reach it as
`request.app[STATE]`. There are no module-level singletons: tests build as many independent
servers as they like, each with its own registry and folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from api.websocket import Hub
from engine.backends import create_backend
from engine.config import EngineConfig, build_executor, build_registry
from engine.execute import Executor
from engine.jobstore import JobStore
from engine.queue import PromptQueue
from engine.registry import NodeRegistry

STATE: web.AppKey["ServerState"] = web.AppKey("state")


@dataclass
class ServerSettings:
    """What the command line controls beyond the engine's own configuration."""

    host: str = "127.0.0.1"
    port: int = 8188
    token: str | None = None           # required on every request when set
    user_dir: Path = Path("user")      # the queue/history database lives here
    web_dir: Path = Path(__file__).resolve().parent.parent / "web"
    workflows_dir: Path = Path(__file__).resolve().parent.parent / "workflows"  # listed by GET /workflows
    max_history: int = 10_000          # finished prompts kept in the history
    max_body_bytes: int = 32 * 2**20   # JSON request bodies
    max_upload_bytes: int = 64 * 2**20 # one uploaded file
    max_image_pixels: int = 64 * 2**20 # uploaded images and /view conversions
    max_ws_clients: int = 1_000
    header_timeout: float = 10.0       # seconds to receive a request's head (slowloris; api/connections.py)
    body_timeout: float = 60.0         # longest silence while a request body arrives
    keepalive_timeout: float = 75.0    # an idle kept-alive connection is closed after this
    max_connections_per_address: int = 128  # open connections per client address (IPv6: per /64)
    max_connections: int = 1_000       # open connections in all
    max_queue: int = 10_000            # pending + running prompts
    preview_interval: float = 0.1      # seconds between two preview frames of one prompt
    loopback_only: bool = True         # refuse Host headers that are not loopback names (DNS rebinding)
    backend: str = "local"             # where prompts run: "local" (in-process) or "ray" (engine.backends)
    ray_address: str = "auto"          # the Ray cluster to join ("auto", HOST:PORT, or "local" to start one)
    workers: int | None = None         # CPU workers (Ray: default one per GPU); local: in-process workers
    shared_outputs: bool = False       # Ray workers write to the output folder directly (shared storage)
    front_end_dir: Path | None = None  # ComfyUI's editor files (--front-end comfyui): at /, ours at /sdgraph/

    @property
    def database(self) -> Path:
        return Path(self.user_dir) / "queue.sqlite3"

    @property
    def user_data_dir(self) -> Path:
        """The one user's files and settings (ComfyUI's `user/default/`): a subfolder, so the
        user-data API can never reach the database beside it."""
        return Path(self.user_dir) / "default"


@dataclass
class ServerState:
    """One server instance: its engine, durable queue, WebSocket clients and settings."""

    config: EngineConfig
    settings: ServerSettings
    executor: Executor
    store: JobStore
    queue: PromptQueue
    hub: Hub
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def registry(self) -> NodeRegistry:
        return self.executor.registry

    @property
    def paths(self):
        return self.executor.paths


def build_state(config: EngineConfig, settings: ServerSettings, registry: NodeRegistry | None = None) -> ServerState:
    """Engine, store, queue and hub for one server; `registry` overrides the configured node packs."""
    # KSampler renders latent previews; the hub sends them to the clients that ask.
    config.settings.setdefault("previews", True)
    executor = build_executor(config, registry or build_registry(config))
    for folder in (config.input_dir, config.output_dir, config.temp_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.database, max_history=settings.max_history)
    hub = Hub(max_clients=settings.max_ws_clients)
    backend = create_backend(settings.backend, executor, config, workers=settings.workers,
                             preview_interval=settings.preview_interval, ray_address=settings.ray_address,
                             shared_outputs=settings.shared_outputs)
    queue = PromptQueue(backend, store, hub.publish_threadsafe, validator=executor)
    return ServerState(config=config, settings=settings, executor=executor, store=store, queue=queue, hub=hub)
