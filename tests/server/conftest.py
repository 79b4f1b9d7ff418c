"""A real server per test: the app on a free loopback port, in its own thread and event loop.

Tests are `async def` functions run with `asyncio.run` (a small hook below, no plugin needed);
they talk to the server over real HTTP and WebSocket connections with aiohttp's client.
The registry holds the engine's toy nodes plus the server toys, so no model or torch is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from api.app import create_app
from api.state import ServerSettings, build_state
from engine.config import EngineConfig
from engine.registry import NodeRegistry
from tests.engine.toy_nodes import TOY_NODES
from tests.server.toy_server_nodes import SERVER_TOY_NODES

TEST_TIMEOUT = 120.0  # a hang guard, generous for a loaded 2-core CI machine


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests in a fresh event loop, with a time bound."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(asyncio.wait_for(pyfuncitem.obj(**args), TEST_TIMEOUT))
        return True
    return None


class LiveServer:
    """The app served from a background thread; `url(path)` addresses it."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="test-server", daemon=True)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def start(self) -> "LiveServer":
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    @property
    def state(self):
        from api.state import STATE

        return self.app[STATE]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws{query}"


@pytest.fixture
def folders(tmp_path) -> dict[str, Path]:
    names = ("models", "input", "output", "temp", "user")
    result = {name: tmp_path / name for name in names}
    for path in result.values():
        path.mkdir()
    return result


@pytest.fixture
def settings(folders) -> ServerSettings:
    return ServerSettings(user_dir=folders["user"], web_dir=folders["user"] / "web", preview_interval=0.0,
                          max_body_bytes=2 * 2**20, max_upload_bytes=2**20, max_image_pixels=512 * 512)


@pytest.fixture
def config(folders) -> EngineConfig:
    return EngineConfig(models_dir=folders["models"], input_dir=folders["input"], output_dir=folders["output"],
                        temp_dir=folders["temp"], extension_dirs=[], node_packages=())


@pytest.fixture
def make_server(config, settings):
    """Build and start servers (with setting overrides); all are stopped after the test."""
    started: list[LiveServer] = []

    def make(registry: NodeRegistry | None = None, **overrides: Any) -> LiveServer:
        registry = registry or NodeRegistry([*TOY_NODES, *SERVER_TOY_NODES])
        state = build_state(config, replace(settings, **overrides), registry)
        server = LiveServer(create_app(state)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server) -> LiveServer:
    return make_server()


# --- client helpers ---------------------------------------------------------------------------

class Api:
    """A thin HTTP client: `status, body = await api.get(path)`; bodies decoded as JSON when they are."""

    def __init__(self, server: LiveServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def request(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.server.url(path), **kw) as response:
            raw = await response.read()
            if response.content_type == "application/json":
                return response.status, json.loads(raw)
            return response.status, raw

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        if body is not None and "data" not in kw:
            kw["json"] = body
        return await self.request("POST", path, **kw)

    async def queue_prompt(self, prompt: dict, **fields: Any) -> str:
        status, body = await self.post("/prompt", {"prompt": prompt, **fields})
        assert status == 200, body
        return body["prompt_id"]

    async def wait_done(self, prompt_id: str, timeout: float = 10.0) -> dict:
        """Poll `/history/{id}` until the entry appears."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            status, body = await self.get(f"/history/{prompt_id}")
            if body:
                return body[prompt_id]
            await asyncio.sleep(0.02)
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout}s")


@contextlib.asynccontextmanager
async def connect(server: LiveServer, **session_kw: Any):
    """`async with connect(server) as api:` — an Api over a fresh client session."""
    async with aiohttp.ClientSession(**session_kw) as session:
        yield Api(server, session)


async def next_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> dict:
    """The next JSON message (binary frames skipped)."""
    while True:
        message = await ws.receive(timeout)
        if message.type == aiohttp.WSMsgType.TEXT:
            return json.loads(message.data)
        if message.type != aiohttp.WSMsgType.BINARY:
            raise AssertionError(f"socket closed: {message}")


async def events_until_done(ws: aiohttp.ClientWebSocketResponse, prompt_id: str, timeout: float = 10.0,
                            binary: list | None = None) -> list[tuple[str, dict]]:
    """Every message up to and including `executing {node: null}` for `prompt_id`."""
    events: list[tuple[str, dict]] = []
    while True:
        message = await ws.receive(timeout)
        if message.type == aiohttp.WSMsgType.BINARY:
            if binary is not None:
                binary.append(message.data)
            continue
        if message.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"socket closed: {message}")
        data = json.loads(message.data)
        events.append((data["type"], data["data"]))
        if data["type"] == "executing" and data["data"].get("node") is None \
                and data["data"].get("prompt_id") == prompt_id:
            return events


def graph(nodes: dict) -> dict:
    """API format from {id: (class_type, inputs)}."""
    return {nid: {"class_type": ct, "inputs": inputs} for nid, (ct, inputs) in nodes.items()}


def sum_graph(a: int = 2, b: int = 3) -> dict:
    return graph({"1": ("Number", {"value": a}), "2": ("Number", {"value": b}),
                  "3": ("Add", {"a": ["1", 0], "b": ["2", 0]}), "4": ("Show", {"value": ["3", 0]})})


def slow_graph(steps: int = 100, delay: float = 0.01, value: int = 1) -> dict:
    return graph({"1": ("Number", {"value": value}),
                  "2": ("Slow", {"value": ["1", 0], "steps": steps, "delay": delay}),
                  "3": ("Show", {"value": ["2", 0]})})
