"""A progress notice (a progress event with text, as the one-time UNet compile sends) shows in the editor as
a toast, beside the run's own status. The server loads the toy pack whose NoticeNumber sends one."""

from __future__ import annotations

import pytest

from tests.web.editor_page import EditorPage
from tests.web.helpers import open_editor

NOTICE = "compiling UNet for this CPU, one-time, a few minutes"
WAIT_MS = 30_000


@pytest.fixture
def editor(browser, toy_server):
    with open_editor(browser, toy_server.url) as editor:
        yield editor


def test_a_progress_notice_shows_as_a_toast_while_the_run_goes_on_to_finish(editor: EditorPage):
    # Every toast the page ever shows is noted: a toast leaves after a few seconds, the record stays.
    editor.js("""() => {
        window.toastsShown = [];
        new MutationObserver((records) => {
            for (const record of records)
                for (const added of record.addedNodes)
                    if (added.classList?.contains('toast')) window.toastsShown.push(added.textContent);
        }).observe(document.body, { childList: true, subtree: true });
    }""")
    editor.js("""async ([prompt]) => {
        const { workflowFromJson } = await import('/js/formats.js');
        sdgraph.load(workflowFromJson(prompt, sdgraph.defs), 'notice');
    }""", [{"1": {"class_type": "NoticeNumber", "inputs": {"value": 5, "text": NOTICE}},
            "2": {"class_type": "ShowValue", "inputs": {"value": ["1", 0]}}}])
    editor.page.wait_for_function("() => sdgraph.graph.nodes.size === 2")

    editor.queue()
    editor.page.wait_for_function("(text) => window.toastsShown.includes(text)", arg=NOTICE, timeout=WAIT_MS)
    editor.page.wait_for_function("() => document.querySelector('#run-status .run-text').textContent === 'Finished'",
                                  timeout=WAIT_MS)
    assert editor.js("() => window.toastsShown").count(NOTICE) == 1
