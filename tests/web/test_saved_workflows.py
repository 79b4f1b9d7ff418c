"""Workflows saved on the server (ComfyUI's user-data API): saved in one browser, opened in another;
renamed and deleted in the workflow browser; and Save as PNG, whose embedded workflow opens back."""

from __future__ import annotations

import json
import urllib.request

from tests.web.editor_page import EditorPage, same_graph

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def saved_names(editor: EditorPage) -> list[str]:
    return editor.page.locator("#workflow-browser .saved-item").evaluate_all("items => items.map(i => i.dataset.name)")


def open_browser(editor: EditorPage) -> None:
    editor.page.click("#btn-workflow")
    editor.page.get_by_role("menuitem", name="Saved on the server…").click()
    editor.page.locator("#workflow-browser .saved-list > *").first.wait_for()


def save_on_server(editor: EditorPage, name: str) -> None:
    open_browser(editor)
    editor.page.fill("#workflow-browser .saved-name", name)
    editor.page.click("#workflow-browser .saved-save")
    editor.page.locator(f'#workflow-browser .saved-item[data-name="{name}.json"]').wait_for()


def user_file(server, name: str) -> bytes:
    with urllib.request.urlopen(f"{server.url}/userdata/{urllib.request.quote(name, safe='')}") as response:
        return response.read()


def test_a_workflow_saved_in_one_browser_opens_in_another(browser, server):
    first = browser.new_context(viewport={"width": 1440, "height": 900})
    second = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        one = EditorPage(first.new_page(), server.url)
        one.open()
        one.set_widget(6, "text", "a blue square on a white background")
        one.set_widget(3, "seed", 4242)
        sent = one.workflow()
        save_on_server(one, "shared square")
        assert one.page.locator("#workflow-name").inner_text() == "shared square"
        assert one.page.locator("#unsaved").is_hidden(), "saved on the server: nothing unsaved"
        assert same_graph(json.loads(user_file(server, "workflows/shared square.json")), sent)

        other = EditorPage(second.new_page(), server.url)   # another browser: no storage in common
        other.open()
        assert other.widget_value(3, "seed") != 4242
        open_browser(other)
        assert "shared square.json" in saved_names(other)
        other.page.locator('#workflow-browser .saved-item[data-name="shared square.json"] .saved-open').click()
        other.page.wait_for_function("() => sdgraph.graph.widgetValue(sdgraph.graph.nodes.get(3), 'seed') === 4242")
        assert same_graph(other.workflow(), sent)
        assert other.page.locator("#workflow-name").inner_text() == "shared square"
        assert other.page.locator("#workflow-browser").is_hidden(), "opening closes the browser"
        assert not one.unexpected_console_errors() and not other.unexpected_console_errors()
    finally:
        first.close()
        second.close()


def test_rename_and_delete_in_the_workflow_browser(editor: EditorPage, server, screenshots):
    save_on_server(editor, "to rename")
    save_on_server(editor, "to delete")
    item = editor.page.locator('#workflow-browser .saved-item[data-name="to rename.json"]')
    item.locator(".saved-rename").click()
    field = item.locator(".saved-rename-input")
    field.fill("renamed/kept")                  # a sub-folder of workflows/ is allowed
    field.press("Enter")
    editor.page.locator('#workflow-browser .saved-item[data-name="renamed/kept.json"]').wait_for()
    assert "to rename.json" not in saved_names(editor)
    assert same_graph(json.loads(user_file(server, "workflows/renamed/kept.json")), editor.workflow())

    editor.page.locator('#workflow-browser .saved-item[data-name="to delete.json"] .saved-delete').click()
    editor.answer("delete")
    editor.page.locator('#workflow-browser .saved-item[data-name="to delete.json"]').wait_for(state="detached")
    assert "renamed/kept.json" in saved_names(editor)
    editor.screenshot(screenshots / "workflow-browser.png")
    with urllib.request.urlopen(f"{server.url}/v2/userdata?path=workflows") as response:
        paths = {entry["path"] for entry in json.loads(response.read())}
    assert "workflows/to delete.json" not in paths and "workflows/renamed/kept.json" in paths


def test_saving_under_a_taken_name_asks_before_replacing(editor: EditorPage, server):
    save_on_server(editor, "taken")
    editor.set_widget(3, "seed", 99)
    editor.page.fill("#workflow-browser .saved-name", "taken")
    editor.page.click("#workflow-browser .saved-save")
    editor.answer("cancel")
    assert json.loads(user_file(server, "workflows/taken.json"))["nodes"] != editor.workflow()["nodes"]
    editor.page.click("#workflow-browser .saved-save")
    editor.answer("replace")
    editor.page.wait_for_function("() => document.querySelector('#unsaved').hidden")
    assert same_graph(json.loads(user_file(server, "workflows/taken.json")), editor.workflow())


def png_text_chunks(data: bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG, read here independently of the editor's reader."""
    assert data[:8] == PNG_SIGNATURE
    chunks, offset = {}, 8
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        kind = data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        if kind == b"tEXt":
            key, _, text = body.partition(b"\0")
            chunks[key.decode("latin-1")] = text.decode("latin-1")
        offset += 12 + length
    return chunks


def save_as_png(editor: EditorPage) -> bytes:
    editor.page.click("#btn-workflow")
    with editor.page.expect_download() as download:
        editor.page.get_by_role("menuitem", name="Save as PNG").click()
    with open(download.value.path(), "rb") as file:
        return file.read()


def test_save_as_png_embeds_the_workflow_and_opens_back(editor: EditorPage):
    editor.set_widget(6, "text", "a yellow triangle, naïve “quotes”")   # non-ASCII survives the Latin-1 chunk
    editor.set_widget(3, "seed", 31337)
    sent = editor.workflow()
    png = save_as_png(editor)
    chunks = png_text_chunks(png)
    assert same_graph(json.loads(chunks["workflow"]), sent)
    assert json.loads(chunks["prompt"])["6"]["inputs"]["text"] == "a yellow triangle, naïve “quotes”"
    assert editor.page.locator("#unsaved").is_hidden()

    editor.js("() => { sdgraph.files.openShipped('solid_color.json'); }")
    editor.page.wait_for_function("() => sdgraph.graph.nodes.size === 3")
    editor.drop_file(editor.page.locator(".canvas"), "saved.png", png, "image/png")
    editor.page.wait_for_function("() => sdgraph.graph.nodes.size === 7")
    assert same_graph(editor.workflow(), sent)
    assert editor.widget(6, "text").locator("textarea").input_value() == "a yellow triangle, naïve “quotes”"


def test_save_as_png_after_a_run_carries_the_generated_image(editor: EditorPage, server):
    editor.set_widget(5, "width", 64)
    editor.set_widget(5, "height", 64)
    editor.set_widget(3, "steps", 2)
    editor.queue()
    image = editor.wait_for_output_image(9)
    with urllib.request.urlopen(image.first.get_attribute("src")) as response:
        generated = response.read()
    png = save_as_png(editor)
    assert png_text_chunks(png)["workflow"]
    # the same pixels: every chunk but the text ones is the generated image's
    def image_chunks(data: bytes) -> list[bytes]:
        out, offset = [], 8
        while offset < len(data):
            length = int.from_bytes(data[offset:offset + 4], "big")
            if data[offset + 4:offset + 8] not in (b"tEXt", b"zTXt", b"iTXt"):
                out.append(data[offset:offset + 12 + length])
            offset += 12 + length
        return out
    assert image_chunks(png) == image_chunks(generated)
