"""ComfyUI's own editor (`--front-end comfyui`, the comfyui-frontend-package extra) works unchanged
against our server: it loads with no failed request, runs its default workflow with progress and
previews, shows validation errors on their node, runs nodes added from its search box and workflows
dropped on its canvas, and keeps saved workflows and settings on the server across a restart.

Its workflows are run at about 64×64 in 5 steps (as shipped they take minutes on a shared CPU); their
checkpoint names are mapped onto the built-in tiny model in models/aliases.yaml.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.web.helpers import ROOT, SCREENSHOTS, ServerProcess

FIXTURES = ROOT / "tests" / "fixtures" / "comfy_workflows"
ALIASES = "checkpoints:\n  v1-5-pruned-emaonly-fp16.safetensors: tiny-sd15-random.safetensors\n"
RUN_TIMEOUT = 60  # seconds
# Console errors the editor logs on its own, whatever the server answers.
OWN_ERRORS = ("ComfyApp graph accessed before initialization",)
# What the page records while it runs: each title and progress panel text it shows (on every change of
# the page, however fast a run goes), and the preview images it makes from the server's binary preview
# frames (as object URLs).
RECORDER = """
window.__seen = {titles: [], progress: [], previews: 0};
const createObjectURL = URL.createObjectURL;
URL.createObjectURL = function (blob) {
  if (blob && String(blob.type).startsWith('image/')) window.__seen.previews++;
  return createObjectURL.call(URL, blob);
};
new MutationObserver(() => {
  const seen = window.__seen, panel = document.querySelector('[data-testid=queue-progress-overlay]');
  if (seen.titles.at(-1) !== document.title) seen.titles.push(document.title);
  if (panel && seen.progress.at(-1) !== panel.textContent) seen.progress.push(panel.textContent);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def comfy_home(base: Path) -> Path:
    """Folders for a server: the aliases, and the image the image-to-image workflow loads."""
    (base / "models").mkdir(parents=True)
    (base / "models" / "aliases.yaml").write_text(ALIASES)
    (base / "input").mkdir()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(base / "input" / "example.png")
    return base


class ComfyServer:
    """`python server.py --front-end comfyui` on its own folders, which a restart keeps."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.process = ServerProcess(home, "--front-end", "comfyui")

    @property
    def url(self) -> str:
        return self.process.url

    def restart(self) -> None:
        self.process.stop()
        self.process = ServerProcess(self.home, "--front-end", "comfyui")


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory):
    server = ComfyServer(comfy_home(tmp_path_factory.mktemp("comfyui-frontend")))
    yield server
    server.process.stop()


class ComfyEditor:
    """ComfyUI's editor in a fresh browser context, recording failed requests and console errors."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 900})
        self.page = self.context.new_page()
        self.url = url
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.socket_frames: list[str | bytes] = []
        self.viewed_images: list[str] = []  # the output images the page loaded (to show them)
        answered: set[int] = set()
        page = self.page
        page.add_init_script(RECORDER)

        def on_response(response) -> None:
            if response.status >= 400:
                self.failed.append(f"{response.status} {response.request.method} {response.url}")
            else:
                answered.add(id(response.request))
            if "/api/view?" in response.url and response.headers.get("content-type") == "image/png":
                self.viewed_images.append(response.url)

        def on_request_failed(request) -> None:
            # The editor never reads the (empty) body of its `POST /api/settings/{id}` answers, and
            # Chromium cancels the load of a body nobody read when its Response is garbage-collected:
            # the request reports ERR_ABORTED after the server answered 200 (so would ComfyUI's own
            # empty 200; a page that reads the body never sees it). The test checks they were saved.
            if (request.failure == "net::ERR_ABORTED" and id(request) in answered and request.method == "POST"
                    and "/api/settings/" in request.url):
                return
            self.failed.append(f"{request.method} {request.url}: {request.failure}")

        page.on("response", on_response)
        page.on("requestfailed", on_request_failed)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: self.socket_frames.append(f)))

    def open(self, path: str = "/") -> None:
        self.page.goto(self.url + path)
        self.page.wait_for_function("() => window.app && window.app.graph && window.app.extensionManager",
                                    timeout=60_000)
        self.page.wait_for_load_state("networkidle", timeout=60_000)

    def wait_until(self, condition, what: str, seconds: float = 30) -> None:
        """Poll `condition` (which may ask the server) while the page goes on handling its events."""
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.page.wait_for_timeout(100)

    def dismiss_templates(self) -> None:
        """Close the template browser it opens for a first-time user."""
        dialog = self.page.get_by_role("dialog")
        dialog.wait_for()
        self.page.keyboard.press("Escape")
        dialog.wait_for(state="detached")

    def close(self) -> None:
        self.context.close()

    def take_problems(self) -> list[str]:
        """Failed requests and console errors so far (errors the editor logs on its own left out)."""
        problems = self.failed + [e for e in self.errors if not e.startswith(OWN_ERRORS)]
        self.failed.clear()
        self.errors.clear()
        return problems

    def command(self, command_id: str) -> None:
        """Run one of the editor's own commands (what its menus and key bindings call)."""
        self.page.evaluate("id => window.app.extensionManager.command.execute(id)", command_id)

    def nodes(self) -> dict[str, str]:
        return self.page.evaluate("() => Object.fromEntries(window.app.graph.nodes.map(n => [n.id, n.type]))")

    def set_widget(self, node_id: int, name: str, value) -> None:
        self.page.evaluate("([id, name, value]) => { window.app.graph.getNodeById(id).widgets"
                           ".find(w => w.name === name).value = value; }", [node_id, name, value])

    def run_and_wait_for_image(self) -> dict:
        """Click Run; wait until the run is over and the page has loaded the saved image (shown on the
        Save Image node, brought into view). Returns that image's entry from the `executed` message."""
        start = len(self.socket_frames)
        self.page.get_by_test_id("queue-button").click()
        deadline = time.monotonic() + RUN_TIMEOUT
        while not any(m["type"] in ("execution_success", "execution_error") for m in self.frames_from(start)):
            if time.monotonic() > deadline:
                self.page.screenshot(path=str(SCREENSHOTS / "comfyui-run-failed.png"))
                raise AssertionError(f"the run did not end: {self.take_problems()} {self.frames_from(start)}")
            self.page.wait_for_timeout(100)
        messages = self.frames_from(start)
        assert not [m for m in messages if m["type"] == "execution_error"], messages
        image = next(m["data"]["output"]["images"][0] for m in messages
                     if m["type"] == "executed" and "images" in m["data"]["output"])
        self.command("Comfy.Canvas.FitView")
        url = f"filename={image['filename']}"
        self.wait_until(lambda: any(url in view_url for view_url in self.viewed_images), f"the page to show {image}")
        return image

    def frames_from(self, start: int) -> list[dict]:
        """The JSON WebSocket messages received since `start` frames, as `{"type", "data"}`."""
        return [json.loads(f) for f in self.socket_frames[start:] if isinstance(f, str)]

    def queue_expecting_rejection(self) -> None:
        with self.page.expect_response(lambda r: r.url.endswith("/api/prompt")) as queued:
            self.page.get_by_test_id("queue-button").click()
        assert queued.value.status == 400

    def drop_file(self, name: str, text: str) -> None:
        """Drop a file on the canvas as a user does from a file manager."""
        self.page.evaluate("""([name, text]) => {
            const data = new DataTransfer();
            data.items.add(new File([text], name, {type: 'application/json'}));
            const canvas = document.querySelector('#graph-canvas');
            for (const type of ['dragenter', 'dragover', 'drop'])
              canvas.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true,
                                                        clientX: 700, clientY: 500}));
        }""", [name, text])

    def seen(self) -> dict:
        return self.page.evaluate("() => window.__seen")


def test_comfyui_editor_runs_workflows_and_keeps_what_it_saves(browser, comfy_server):
    """One session, as few page loads as the checks allow (the editor is heavy to load): two."""
    editor = ComfyEditor(browser, comfy_server.url)
    page = editor.page
    editor.open()
    assert editor.take_problems() == []
    # A first start: it records the version it was installed at, then offers its templates.
    editor.wait_until(lambda: server_settings(editor).get("Comfy.InstalledVersion") == "1.45.15",
                      "the installed version stored on the server")
    editor.dismiss_templates()
    editor.command("Comfy.LoadDefaultWorkflow")
    assert sorted(editor.nodes().values()) == sorted(
        ["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
         "VAEDecode", "SaveImage"])
    editor.set_widget(5, "width", 64)
    editor.set_widget(5, "height", 64)
    editor.set_widget(3, "steps", 5)
    editor.set_widget(3, "control_after_generate", "fixed")  # the next run re-runs only what changed

    image = editor.run_and_wait_for_image()
    assert image["filename"].startswith("ComfyUI_") and image["filename"].endswith(".png")
    seen = editor.seen()
    assert any(re.match(r"\[\d+%\]", title) for title in seen["titles"]), seen["titles"]
    assert any(re.search(r"Current node:.*[1-9]\d*%", text) for text in seen["progress"]), seen["progress"]
    assert seen["previews"] > 0 and any(isinstance(f, bytes) for f in editor.socket_frames)
    # The job as its queue panel reopens it (`GET /api/jobs/{id}`, read through its own schema).
    prompt_id = next(m["data"]["prompt_id"] for m in editor.frames_from(0) if m["type"] == "execution_start")
    job = page.evaluate("id => window.app.api.getJobDetail(id)", prompt_id)
    assert job["status"] == "completed" and job["outputs"]["9"]["images"][0]["filename"] == image["filename"]
    assert len(job["workflow"]["extra_data"]["extra_pnginfo"]["workflow"]["nodes"]) == 7
    assert editor.take_problems() == []

    # A validation error is shown on the node whose input is wrong, and nowhere else.
    editor.set_widget(4, "ckpt_name", "missing.safetensors")
    editor.queue_expecting_rejection()
    page.get_by_test_id("error-overlay").wait_for()
    assert "Value not in list" in page.get_by_test_id("error-overlay-messages").text_content()
    flagged = page.evaluate("() => window.app.graph.nodes.filter(n => n.has_errors).map(n => n.id)")
    assert flagged == [4]
    problems = editor.take_problems()  # the rejected prompt's 400, which the editor logs as errors
    assert problems[0] == f"400 POST {editor.url}/api/prompt" and all(
        "status of 400" in p or p.startswith("PromptExecutionError") for p in problems[1:]), problems
    page.get_by_test_id("error-overlay-dismiss").click()
    page.get_by_test_id("error-overlay").wait_for(state="hidden")  # else it may take the double click below
    editor.set_widget(4, "ckpt_name", "v1-5-pruned-emaonly-fp16.safetensors")

    # A node added from its search box (double click on the canvas) runs.
    search = page.get_by_placeholder("Add a node...")
    page.mouse.dblclick(720, 760)
    try:
        search.wait_for(timeout=10_000)
    except PlaywrightTimeoutError:  # on a loaded machine the two clicks can arrive too far apart: once more
        page.mouse.dblclick(720, 760)
    search.press_sequentially("Invert Image")
    page.get_by_text("Invert Image Colors").first.wait_for()
    page.keyboard.press("Enter")
    added = [node_id for node_id, kind in editor.nodes().items() if kind == "ImageInvert"]
    assert len(added) == 1
    page.evaluate("""id => { const graph = window.app.graph, invert = graph.getNodeById(id);
        graph.getNodeById(8).connect(0, invert, 0); invert.connect(0, graph.getNodeById(9), 0); }""",
                  int(added[0]))
    start = len(editor.socket_frames)
    editor.run_and_wait_for_image()
    ran = [m["data"]["node"] for m in editor.frames_from(start) if m["type"] == "executing"]
    assert added[0] in ran and "3" not in ran  # the sampler's result came from the cache

    # One of ComfyUI's shared workflows, dropped on the canvas, runs on the built-in models.
    editor.drop_file("image2image.json", (FIXTURES / "image2image.json").read_text())
    page.wait_for_function("() => window.app.graph.nodes.some(n => n.type === 'LoadImage')")
    editor.set_widget(18, "megapixels", 0.01)
    editor.set_widget(3, "steps", 5)
    start = len(editor.socket_frames)
    editor.run_and_wait_for_image()
    ran = {m["data"]["node"] for m in editor.frames_from(start) if m["type"] == "executing"}
    assert {"10", "18", "12", "3", "9"} <= ran

    # A workflow saved in the editor is listed among the user's workflows; a setting changed is stored.
    editor.set_widget(6, "text", "kept across a restart")
    page.keyboard.press("Control+s")
    page.locator("[role=dialog] input").fill("kept")
    page.get_by_role("button", name="Confirm").click()
    editor.wait_until(lambda: saved_workflows(editor) == ["kept.json"], "the workflow saved on the server")
    page.keyboard.press("Control+,")
    page.get_by_placeholder("Search Settings...").fill("Always snap to grid")
    page.get_by_test_id("settings-dialog").get_by_role("switch", name="Always snap to grid").click()
    editor.wait_until(lambda: server_settings(editor).get("pysssss.SnapToGrid") is True,
                      "the setting stored on the server")
    assert editor.take_problems() == []
    editor.close()

    # After a server restart, in a new browser context (a new origin: nothing kept in the browser),
    # the setting holds and the saved workflow reopens from its workflows panel.
    comfy_server.restart()
    editor = ComfyEditor(browser, comfy_server.url)
    page = editor.page
    try:
        editor.open()
        assert page.evaluate("() => window.app.extensionManager.setting.get('pysssss.SnapToGrid')") is True
        assert saved_workflows(editor) == ["kept.json"]
        page.keyboard.press("w")  # its workflows panel
        page.get_by_test_id("workflows-sidebar").get_by_text("kept").first.click()
        page.wait_for_function("() => document.title.includes('kept')")
        text = page.evaluate("() => window.app.graph.getNodeById(6).widgets.find(w => w.name === 'text').value")
        assert text == "kept across a restart"
        assert editor.take_problems() == []
    finally:
        editor.close()


def test_comfyui_editor_opened_with_its_token_under_listen(browser, tmp_path):
    """With `--listen`, the page opened as `/?token=T` loads, reads and stores through the API and gets
    its WebSocket: the token rides in a cookie, as the editor sends none of its own."""
    server = ServerProcess(comfy_home(tmp_path), "--front-end", "comfyui", "--listen", "127.0.0.1", "--token", "T0K")
    editor = ComfyEditor(browser, server.url)
    page = editor.page
    try:
        assert page.request.get(server.url + "/api/settings").status == 401
        editor.take_problems()
        editor.open("/?token=T0K")
        assert editor.take_problems() == []
        editor.wait_until(lambda: any(m["type"] == "status" for m in editor.frames_from(0)), "the socket's status")
        page.evaluate("() => window.app.extensionManager.setting.set('pysssss.SnapToGrid', true)")
        editor.wait_until(lambda: server_settings(editor).get("pysssss.SnapToGrid") is True,
                          "the setting stored on the server")
        assert editor.take_problems() == []
    finally:
        editor.close()
        server.stop()


def saved_workflows(editor: ComfyEditor) -> list[str]:
    return editor.page.request.get(editor.url + "/api/userdata?dir=workflows").json()


def server_settings(editor: ComfyEditor) -> dict:
    return editor.page.request.get(editor.url + "/api/settings").json()
