"""Work is never lost: undo and redo across runs (what a run shows on nodes is not an edit), New
and Open ask before discarding unsaved changes and can be undone, an unsaved marker, workflows in
tabs kept across reloads, and two browser tabs that never overwrite each other's autosave."""

from __future__ import annotations

from tests.web.editor_page import EditorPage
from tests.web.test_run import make_small

UNDO_DEBOUNCE_MS = 600   # widget edits become an undo step 400 ms after the last one


def position(editor: EditorPage, node_id: int) -> list[float]:
    return next(n["pos"] for n in editor.workflow()["nodes"] if n["id"] == node_id)


def move_node(editor: EditorPage, node_id: int, dx: float, dy: float) -> None:
    x, y = editor.centre(editor.node(node_id).locator(".node-title-text"))
    editor.drag((x, y), (x + dx, y + dy))


def text_of(editor: EditorPage, node_id: int) -> str:
    return editor.widget(node_id, "text").locator("textarea").input_value()


def test_a_move_made_before_a_run_is_undone_and_redone_after_it(editor: EditorPage):
    make_small(editor, steps=2)
    editor.page.wait_for_timeout(UNDO_DEBOUNCE_MS)   # the widget edits are a step of their own
    before = position(editor, 9)
    move_node(editor, 9, 120, 60)
    moved = position(editor, 9)
    assert moved != before
    editor.queue()
    editor.wait_for_output_image(9)              # the image makes the node taller: not an edit

    editor.page.keyboard.press("Control+z")
    assert position(editor, 9) == before
    editor.page.keyboard.press("Control+y")
    assert position(editor, 9) == moved
    editor.page.keyboard.press("Control+z")
    assert position(editor, 9) == before
    # further back: the widget edits before the move
    editor.page.keyboard.press("Control+z")
    assert editor.widget_value(3, "steps") != 2

    # a validation error drawn on a node is not an edit either
    editor.page.keyboard.press("Control+y")
    editor.page.keyboard.press("Control+y")
    assert position(editor, 9) == moved and editor.widget_value(3, "steps") == 2
    editor.allow_http_error(400, "/prompt")
    editor.drag(editor.centre(editor.socket(3, "in", "positive")), editor.empty_point())
    editor.queue()
    editor.node(3).locator(".node-error").first.wait_for()
    editor.page.keyboard.press("Control+z")
    assert editor.links_into(3)["positive"] == 6
    editor.page.keyboard.press("Control+z")
    assert position(editor, 9) == before


def test_new_with_unsaved_changes_asks_and_can_be_undone(editor: EditorPage):
    unsaved = editor.page.locator("#unsaved")
    assert unsaved.is_hidden() and editor.page.locator(".tab.unsaved").count() == 0
    editor.set_widget(6, "text", "words not saved")
    unsaved.wait_for(state="visible", timeout=5_000)
    assert editor.page.locator(".tab.active.unsaved").count() == 1
    assert editor.page.title().startswith("●")

    def new() -> None:
        editor.page.click("#btn-workflow")
        editor.page.locator(".menu-item", has_text="New (empty)").click()
        editor.page.locator(".dialog").wait_for()

    new()
    assert "txt2img" in editor.page.locator(".dialog").inner_text()
    editor.answer("cancel")
    assert len(editor.node_ids()) == 7 and text_of(editor, 6) == "words not saved"

    new()
    editor.answer("replace")
    assert editor.node_ids() == []
    assert editor.page.locator("#workflow-name").inner_text() == "Untitled"
    assert unsaved.is_hidden()

    editor.page.keyboard.press("Control+z")
    assert len(editor.node_ids()) == 7 and text_of(editor, 6) == "words not saved"
    assert editor.page.locator("#workflow-name").inner_text() == "txt2img"
    assert unsaved.is_visible()
    editor.page.keyboard.press("Control+y")
    assert editor.node_ids() == []
    editor.page.keyboard.press("Control+z")

    # or keep it and open the new one beside it, in a tab
    new()
    editor.answer("tab")
    tabs = editor.page.locator(".tab")
    assert tabs.count() == 2 and editor.node_ids() == []
    tabs.first.click()
    assert len(editor.node_ids()) == 7 and text_of(editor, 6) == "words not saved"

    # saving clears the marker; a saved workflow is replaced without a question
    with editor.page.expect_download():
        editor.page.keyboard.press("Control+s")
    assert unsaved.is_hidden() and editor.page.locator(".tab.unsaved").count() == 0
    editor.page.click("#btn-workflow")
    editor.page.locator(".menu-item", has_text="New (empty)").click()
    assert editor.node_ids() == [] and editor.page.locator(".dialog").count() == 0


def test_tabs_are_kept_across_a_reload(editor: EditorPage):
    editor.reload()                                    # nothing changed: nothing unsaved after a reload either
    assert editor.page.locator(".tab").count() == 1 and editor.page.locator(".tab.unsaved").count() == 0
    editor.set_widget(6, "text", "first tab")
    editor.page.click(".tab-add")
    assert editor.page.locator(".tab").count() == 2 and editor.node_ids() == []
    editor.add_from_palette("empty latent image")
    second = editor.workflow()

    editor.reload()
    tabs = editor.page.locator(".tab")
    assert tabs.count() == 2
    assert tabs.nth(1).get_attribute("aria-selected") == "true"
    assert editor.workflow()["nodes"] == second["nodes"]
    assert editor.page.locator(".tab.unsaved").count() == 2
    tabs.first.click()
    assert len(editor.node_ids()) == 7 and text_of(editor, 6) == "first tab"

    # closing a tab with unsaved changes asks
    editor.page.locator(".tab.active .tab-close").click()
    editor.answer("close")
    assert tabs.count() == 1 and [n["type"] for n in editor.workflow()["nodes"]] == ["EmptyLatentImage"]
    editor.reload()
    assert tabs.count() == 1 and [n["type"] for n in editor.workflow()["nodes"]] == ["EmptyLatentImage"]


def test_two_browser_tabs_never_overwrite_each_others_autosave(editor: EditorPage, server):
    editor.set_widget(6, "text", "written in tab A")
    editor.js("() => sdgraph.autosave.flush()")

    other = EditorPage(editor.page.context.new_page(), server.url)
    other.open()
    assert text_of(other, 6) == "written in tab A"         # a new browser tab starts from the newest work
    other.set_widget(6, "text", "written in tab B")
    other.js("() => sdgraph.autosave.flush()")
    editor.set_widget(6, "text", "written in tab A again")
    editor.js("() => sdgraph.autosave.flush()")

    editor.reload()
    other.reload()
    assert text_of(editor, 6) == "written in tab A again"
    assert text_of(other, 6) == "written in tab B"
    sessions = editor.js("() => Object.keys(localStorage).filter((key) => key.startsWith('sdgraph.editor.session.'))")
    assert len(sessions) == 2
    assert not other.unexpected_console_errors()
