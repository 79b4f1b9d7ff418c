"""A real server per test: the app on a free loopback port, in its own thread and event loop.

Tests are `async def` functions run with `asyncio.run` (the hook in tests/conftest.py, no plugin
needed); they talk to the server with the client calls of tests/server/helpers.py.
The registry holds the engine's toy nodes plus the server toys, so no model or torch is needed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.state import ServerSettings, build_state
from engine.config import EngineConfig
from engine.registry import NodeRegistry
from tests.engine.toy_nodes import TOY_NODES
from tests.server.helpers import LiveServer
from tests.server.toy_server_nodes import SERVER_TOY_NODES


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
