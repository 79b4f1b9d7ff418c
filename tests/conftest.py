"""Hooks for the whole suite: `async def` tests run in an event loop, and the browser tier is marked
by folder (every test under tests/web drives Chromium), so `-m "not browser"` leaves them out.
Runs sample eager unless a test asks for the compiled UNet: `compile=auto` would trace it through OpenVINO
on CPUs without native bf16 (CI machines vary), and tests compare eager results; servers and CLIs that
tests start inherit the default."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
from pathlib import Path

import pytest

from engine.paths import Paths
from engine.registry import NodeRegistry

WEB_TESTS = Path(__file__).resolve().parent / "web"
# A third-party pack with its own model kind, loader and sampler (engine, backend and node tests).
PACK_WITH_OWN_MODELS = Path(__file__).resolve().parent / "engine" / "pack_with_own_models.py"
ASYNC_TEST_TIMEOUT = 120.0  # a hang guard, generous for a loaded 2-core CI machine
os.environ["SDGRAPH_COMPILE"] = "off"  # nodes.models.compiled.COMPILE_DEFAULT_ENV


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests in a fresh event loop, with a time bound."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(asyncio.wait_for(pyfuncitem.obj(**args), ASYNC_TEST_TIMEOUT))
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(WEB_TESTS):
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def pack_registry(tmp_path) -> NodeRegistry:
    """A registry that knows only the pack in tests/engine/pack_with_own_models.py, loaded from an
    extension folder as any third-party pack is."""
    folder = tmp_path / "custom_nodes"
    folder.mkdir()
    shutil.copy(PACK_WITH_OWN_MODELS, folder / PACK_WITH_OWN_MODELS.name)
    registry = NodeRegistry()
    assert registry.load_extensions(folder) == ["PackLoader", "PackSampler"], registry.failures
    return registry


@pytest.fixture
def pack_paths(tmp_path) -> Paths:
    """Folders with one model of the pack's kind, `pack_models/a.bin`."""
    (tmp_path / "models" / "pack_models").mkdir(parents=True)
    (tmp_path / "models" / "pack_models" / "a.bin").write_bytes(b"12345")
    return Paths(models_dir=tmp_path / "models", output_dir=tmp_path / "out")
