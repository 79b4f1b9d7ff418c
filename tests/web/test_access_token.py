"""The editor behind an access token (a server started with --listen or --token): opened as
`/?token=…`, it passes the token on every request a browser makes for it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.web.editor_page import EditorPage
from tests.web.helpers import ACCESS_TOKEN
from tests.web.test_run import make_small

WEB = Path(__file__).resolve().parents[2] / "web"


def test_every_module_of_the_editor_is_in_the_token_import_map():
    listed = re.search(r"const modules = \[(.*?)\];", (WEB / "index.html").read_text(), re.S).group(1)
    assert sorted(re.findall(r'"(\w+)"', listed)) == sorted(p.stem for p in (WEB / "js").glob("*.js"))


def test_the_editor_loads_and_runs_with_an_access_token(browser, token_server):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    editor = EditorPage(context.new_page(), token_server.url)
    try:
        editor.open(f"?token={ACCESS_TOKEN}")
        assert len(editor.workflow()["nodes"]) == 7
        editor.page.wait_for_selector("#connection.online")
        make_small(editor, steps=2)
        editor.queue()
        image = editor.wait_for_output_image(9)
        assert f"token={ACCESS_TOKEN}" in image.first.get_attribute("src")
        assert editor.unexpected_console_errors() == []
    finally:
        context.close()
