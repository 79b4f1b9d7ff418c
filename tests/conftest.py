"""Hooks for the whole suite: `async def` tests run in an event loop, and the browser tier is marked
by folder (every test under tests/web drives Chromium), so `-m "not browser"` leaves them out."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

WEB_TESTS = Path(__file__).resolve().parent / "web"
ASYNC_TEST_TIMEOUT = 120.0  # a hang guard, generous for a loaded 2-core CI machine


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
