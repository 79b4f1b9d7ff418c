"""Browser tests: the real server (a subprocess, built-in tiny checkpoint) and Debian's Chromium
driven by Playwright. A missing browser or Playwright fails these tests; it never skips them.

Each test gets a fresh browser context (empty localStorage) through the `editor` fixture, which
also fails the test on any console error or uncaught page error.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.web.editor_page import EditorPage
from tests.web.helpers import ACCESS_TOKEN

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SDGRAPH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
SERVER_START_TIMEOUT = 120


class ServerProcess:
    """`python server.py --port 0` with its own folders; the URL is read from its first line."""

    def __init__(self, base: Path, *options: str) -> None:
        self.folders = {name: base / name for name in ("models", "input", "output", "temp", "user")}
        for folder in self.folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "server.py", "--port", "0", *options]
        for name, folder in self.folders.items():
            command += [f"--{name}-dir", str(folder)]
        self.log: list[str] = []
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.url = self._wait_for_url()
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_url(self) -> str:
        found: list[str] = []

        def read() -> None:
            for line in self.proc.stdout:
                self.log.append(line)
                match = re.search(r"sdgraph server: (http://[^/\s]+)", line.strip())
                if match:
                    found.append(match.group(1))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(SERVER_START_TIMEOUT)
        if not found:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(self.log))
        return found[0]

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.log.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    editor = EditorPage(page, server.url)
    editor.open()
    yield editor
    problems = editor.unexpected_console_errors()
    context.close()
    assert not problems, "browser console errors:\n" + "\n".join(problems)
