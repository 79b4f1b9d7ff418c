"""What the server tests share: a live server in a background thread or a subprocess, the client
calls that talk to it over real HTTP and WebSocket connections (aiohttp's client), and toy graphs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from api.connections import start_server
from api.state import STATE

ROOT = Path(__file__).resolve().parents[2]
TOY_PACK = ROOT / "tests" / "engine" / "toy_nodes.py"


class ServerProcess:
    """`python server.py --port 0` in a subprocess on `workdir`'s folders, its `custom_nodes/` the only
    extensions; `stop` sends SIGKILL unless told otherwise."""

    def __init__(self, workdir: Path, *extra_args: str) -> None:
        self.workdir = workdir
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None
        self.base = ""

    def start(self) -> "ServerProcess":
        w = self.workdir
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--port", "0", "--no-builtin-nodes",
             "--extensions", str(w / "custom_nodes"), "--user-dir", str(w / "user"),
             "--input-dir", str(w / "input"), "--output-dir", str(w / "output"), "--temp-dir", str(w / "temp"),
             "--models-dir", str(w / "models"), *self.extra_args],
            cwd=w, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"server exited: {self.process.wait()}")
            if line.startswith("sdgraph server: "):
                self.base = line.split(": ", 1)[1].strip().rstrip("/")
                return self
        raise AssertionError("server did not start")

    def call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait_for(self, predicate, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError("condition not reached in time")

    def stop(self, sig=signal.SIGKILL, timeout: float = 15.0) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.process.stdout.close()
        return code


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
        # The server's own path (api/connections.py): its timeouts and connection caps apply in tests too.
        runner = await start_server(self.app, self.app[STATE].settings, "127.0.0.1", 0)
        try:
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
