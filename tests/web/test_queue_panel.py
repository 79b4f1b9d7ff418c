"""The queue panel: the prompts running and waiting (also other clients'), cancel one, clear all, run
first, a batch count for the next run, and the notice when a run was served entirely from the cache.

The server here also loads a toy pack (toy_queue_nodes.py): a `SlowNumber` keeps a prompt running
while others wait, without any model."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.web.editor_page import EditorPage
from tests.web.helpers import open_editor

PANEL = "#queue-panel"
RUN_TEXT = "document.querySelector('#run-status .run-text')"


@pytest.fixture
def editor(browser, toy_server):
    with open_editor(browser, toy_server.url) as editor:
        yield editor
        call(toy_server, "POST", "/queue", {"clear": True})
        call(toy_server, "POST", "/interrupt", {})


def call(server, method: str, path: str, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
        return json.loads(text) if text else None


def toy_prompt(steps: int, delay: float, value: int = 1) -> dict:
    return {"1": {"class_type": "SlowNumber", "inputs": {"value": value, "steps": steps, "delay": delay}},
            "2": {"class_type": "ShowValue", "inputs": {"value": ["1", 0]}}}


def show_toy_graph(editor: EditorPage, steps: int, delay: float, value: int = 1) -> None:
    """Replace the shown workflow by SlowNumber → ShowValue."""
    editor.js("""async ([api]) => {
        const { workflowFromJson } = await import('/js/formats.js');
        sdgraph.load(workflowFromJson(api, sdgraph.defs), 'toy');
    }""", [toy_prompt(steps, delay, value)])
    editor.page.wait_for_function("() => sdgraph.graph.nodes.size === 2")


def open_panel(editor: EditorPage) -> None:
    editor.page.click("#queue-size")
    editor.page.locator(f"{PANEL} .queue-list > *").first.wait_for()


def rows(editor: EditorPage) -> list[dict]:
    return editor.page.locator(f"{PANEL} .queue-item").evaluate_all("""items => items.map(i => ({
        id: i.dataset.promptId, running: i.classList.contains('running'), mine: i.classList.contains('mine'),
        text: i.innerText }))""")


def wait_rows(editor: EditorPage, predicate: str) -> None:
    """Wait until the panel's rows (as `rows` reads them, `r` in the expression) satisfy `predicate`."""
    editor.page.wait_for_function(f"""() => {{
        const r = [...document.querySelectorAll('{PANEL} .queue-item')].map(i => ({{
            id: i.dataset.promptId, running: i.classList.contains('running'), mine: i.classList.contains('mine') }}));
        return {predicate};
    }}""", timeout=20_000)


def server_queue(server) -> tuple[list[str], list[str]]:
    queue = call(server, "GET", "/queue")
    pending = sorted(queue["queue_pending"], key=lambda item: item[0])
    return [item[1] for item in queue["queue_running"]], [item[1] for item in pending]


def test_batch_count_queues_n_prompts_and_cancel_clear_stop_act_on_them(editor: EditorPage, toy_server,
                                                                       screenshots):
    show_toy_graph(editor, steps=400, delay=0.05)
    open_panel(editor)
    assert editor.page.locator(f"{PANEL} .queue-empty").is_visible()
    editor.page.fill("#batch-count", "4")
    editor.queue()
    wait_rows(editor, "r.length === 4 && r[0].running && r.every(x => x.mine)")
    ids = editor.js("() => [...sdgraph.runner.mine]")
    assert len(ids) == 4
    running, pending = server_queue(toy_server)
    assert running == [ids[0]] and pending == ids[1:]
    assert "this tab" in rows(editor)[1]["text"] and "waiting" in rows(editor)[1]["text"]
    editor.screenshot(screenshots / "queue-panel.png")

    # cancel one waiting prompt: it leaves the server's queue and the panel
    editor.page.locator(f'{PANEL} .queue-item[data-prompt-id="{ids[2]}"] .queue-cancel').click()
    wait_rows(editor, "r.length === 3")
    assert server_queue(toy_server) == ([ids[0]], [ids[1], ids[3]])

    # clear all: every waiting prompt goes, the running one goes on
    editor.page.click(f"{PANEL} .queue-clear")
    wait_rows(editor, "r.length === 1 && r[0].running")
    assert server_queue(toy_server) == ([ids[0]], [])
    assert any("Removed 2 waiting prompts" in text for text in editor.toasts())

    # stop the running one
    editor.page.locator(f'{PANEL} .queue-item[data-prompt-id="{ids[0]}"] .queue-cancel').click()
    editor.page.locator(f"{PANEL} .queue-empty").wait_for(timeout=20_000)
    assert server_queue(toy_server) == ([], [])
    history = call(toy_server, "GET", "/history")
    assert ids[0] in history and not {ids[1], ids[2], ids[3]} & set(history)
    assert history[ids[0]]["status"]["status_str"] == "error"   # ComfyUI records an interrupt as an error


def test_prompts_of_other_clients_show_and_run_first_jumps_ahead_of_them(editor: EditorPage, toy_server):
    show_toy_graph(editor, steps=400, delay=0.05, value=7)
    blocker = call(toy_server, "POST", "/prompt", {"prompt": toy_prompt(400, 0.05, 2), "client_id": "someone-else"})
    waiting = [call(toy_server, "POST", "/prompt", {"prompt": toy_prompt(1, 0, n), "client_id": "someone-else"})
               for n in (3, 4)]
    open_panel(editor)
    wait_rows(editor, "r.length === 3 && r[0].running && !r.some(x => x.mine)")
    assert all("another client" in row["text"] for row in rows(editor))

    editor.page.click(f"{PANEL} .queue-front")
    wait_rows(editor, "r.length === 4 && r[1].mine")
    mine = editor.js("() => [...sdgraph.runner.mine]")
    assert len(mine) == 1
    assert server_queue(toy_server) == ([blocker["prompt_id"]], [mine[0]] + [w["prompt_id"] for w in waiting])
    assert [row["id"] for row in rows(editor)] == [blocker["prompt_id"], mine[0]] + [w["prompt_id"] for w in waiting]


def test_re_running_an_unchanged_graph_says_nothing_changed(editor: EditorPage, toy_server):
    show_toy_graph(editor, steps=2, delay=0.0, value=11)
    editor.queue()
    editor.page.wait_for_function("() => document.querySelector('#run-status .run-text').textContent === 'Finished'")
    assert not any("Nothing changed" in text for text in editor.toasts()), "the first run ran its nodes"
    editor.queue()
    notice = editor.page.locator(".toast", has_text="Nothing changed")
    notice.wait_for(timeout=20_000)
    assert notice.inner_text() == "Nothing changed: 0 nodes ran (2 from the cache)."
    first, second = editor.js("() => [...sdgraph.runner.mine]")
    history = call(toy_server, "GET", "/history")
    assert history[first]["outputs"] == history[second]["outputs"] == {"2": {"values": [11]}}
    # a changed widget runs again, without the notice
    editor.js("() => document.querySelectorAll('.toast').forEach(t => t.remove())")
    editor.set_widget(1, "value", 12)
    editor.queue()
    editor.page.wait_for_function("() => sdgraph.runner.mine.size === 3")
    third = editor.js("() => [...sdgraph.runner.mine][2]")
    editor.page.wait_for_function(f"""async () => (await (await fetch('/history/{third}')).json())['{third}']
                                   ?.status?.completed === true""", timeout=20_000)
    editor.page.wait_for_timeout(300)
    assert not any("Nothing changed" in text for text in editor.toasts())


def test_a_run_that_finishes_before_the_queue_answer_arrives_still_says_finished(editor: EditorPage, toy_server):
    """The WebSocket events of a fast run can beat POST /prompt's answer; the late answer must not
    turn "Finished" back into "Queued" (this raced in CI)."""
    show_toy_graph(editor, steps=1, delay=0.0, value=21)

    def answer_late(route):
        response = route.fetch()
        prompt_id = response.json()["prompt_id"]
        for _ in range(200):   # hold the answer until the server has finished the run
            if call(toy_server, "GET", f"/history/{prompt_id}").get(prompt_id, {}).get("status", {}).get("completed"):
                break
            time.sleep(0.05)
        editor.page.wait_for_function(f"() => {RUN_TEXT}.textContent === 'Finished'")
        route.fulfill(response=response)

    editor.page.route("**/prompt",
                      lambda route: answer_late(route) if route.request.method == "POST" else route.continue_())
    editor.queue()
    editor.page.wait_for_function("() => sdgraph.runner.mine.size === 1")
    editor.page.wait_for_timeout(200)
    assert editor.js(f"() => {RUN_TEXT}.textContent") == "Finished"
