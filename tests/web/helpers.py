"""What the browser tests share besides fixtures: the server subprocess they drive and its constants."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

from tests.web.editor_page import EditorPage

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
SERVER_START_TIMEOUT = 120
TOY_PACK = Path(__file__).resolve().parent / "toy_queue_nodes.py"
ACCESS_TOKEN = "web-test-token"  # the token the `token_server` fixture's server is started with


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


def toy_pack_server(base: Path) -> ServerProcess:
    """A server that also loads the toy pack (toy_queue_nodes.py): nodes that take their time or send a notice."""
    (base / "extensions").mkdir()
    shutil.copy(TOY_PACK, base / "extensions" / TOY_PACK.name)
    return ServerProcess(base, "--extensions", str(base / "extensions"))


@contextlib.contextmanager
def open_editor(browser: Any, url: str) -> Iterator[EditorPage]:
    """The editor at `url` in a fresh browser context; console errors and page errors fail the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    editor = EditorPage(context.new_page(), url)
    editor.open()
    yield editor
    problems = editor.unexpected_console_errors()
    context.close()
    assert not problems, "browser console errors:\n" + "\n".join(problems)
