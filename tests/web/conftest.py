"""Browser tests: the real server (a subprocess, built-in tiny checkpoint) and Debian's Chromium
driven by Playwright. A missing browser or Playwright fails these tests; it never skips them.

Each test gets a fresh browser context (empty localStorage) through the `editor` fixture, which
also fails the test on any console error or uncaught page error.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.web.helpers import ACCESS_TOKEN, SCREENSHOTS, ServerProcess, open_editor, toy_pack_server

CHROMIUM = os.environ.get("SDGRAPH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("web-server"))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def token_server(tmp_path_factory):
    """A second server that requires an access token (as `--listen` does)."""
    process = ServerProcess(tmp_path_factory.mktemp("web-token-server"), "--token", ACCESS_TOKEN)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser():
    # Module scope: Playwright's sync API keeps an event loop running in this thread while it is
    # open, which would break `asyncio.run` in other test folders collected after this one.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `apt-get install -y chromium` "
                    "(the browser tests need it; they do not skip)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: install the test extra (pip install -e '.[test]')")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def editor(browser, server):
    """The editor opened in a fresh context; console errors and page errors fail the test."""
    with open_editor(browser, server.url) as editor:
        yield editor


@pytest.fixture(scope="module")
def toy_server(tmp_path_factory):
    """A server of the module's own that also loads the toy pack (tests/web/toy_queue_nodes.py)."""
    process = toy_pack_server(tmp_path_factory.mktemp("web-toy-server"))
    yield process
    process.stop()
