"""What keeps big graphs fast, as the user sees it: an edit redraws only the nodes it changes (and
an undo keeps the elements it did not change, still wired to the graph), nodes off screen are not
drawn yet come back when panned to. Zoomed out, the overview draws them (test_overview.py)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.editor_page import EditorPage


def mark_nodes(editor: EditorPage) -> None:
    editor.js("() => { for (const el of document.querySelectorAll('.canvas .node')) el.dataset.marked = 'yes'; }")


def unmarked_nodes(editor: EditorPage) -> list[int]:
    return editor.js("""() => [...document.querySelectorAll('.canvas .node:not([data-marked])')]
        .map((el) => Number(el.dataset.nodeId)).sort((a, b) => a - b)""")


def test_an_edit_redraws_only_the_nodes_it_changes_and_undo_keeps_the_rest(editor: EditorPage):
    mark_nodes(editor)
    editor.add_from_palette("VAEDecode")
    added = max(editor.node_ids())
    assert unmarked_nodes(editor) == [added]

    editor.drag_between(editor.socket(4, "out", "VAE"), editor.socket(added, "in", "vae"))
    assert editor.links_into(added) == {"vae": 4}
    assert editor.page.locator(".link-layer path.link").count() == 10
    assert unmarked_nodes(editor) == [added]

    editor.page.locator(".canvas").focus()
    editor.page.keyboard.press("Control+z")
    editor.page.keyboard.press("Control+z")
    assert added not in editor.node_ids()
    assert editor.page.locator(".link-layer path.link").count() == 9
    assert unmarked_nodes(editor) == []

    # a kept element edits the node now in the graph (the undo loaded a fresh copy of it)
    editor.set_widget(3, "steps", 7)
    assert editor.widget_value(3, "steps") == 7
    assert next(n for n in editor.workflow()["nodes"] if n["id"] == 3)["widgets_values"][2] == 7


def test_off_screen_nodes_are_not_drawn_and_come_back_when_panned_to(editor: EditorPage):
    canvas = editor.page.locator(".canvas").bounding_box()
    # at 100 %, put the SaveImage node 1,000 px past the canvas's right edge
    editor.js("""(right) => {
        const view = sdgraph.view, node = sdgraph.graph.nodes.get(9);
        view.setViewport({ scale: 1, offset: [0, 0] });
        sdgraph.graph.moveNodes([9], right + 1000 - node.pos[0], 100 - node.pos[1]);
        view.updatePositions([9]);
    }""", canvas["width"])
    expect(editor.node(9)).to_be_hidden()
    expect(editor.node(3)).to_be_visible()
    expect(editor.page.locator('.link-layer path.link[data-link-id="9"]')).to_be_visible()   # one end on screen

    start = (canvas["x"] + canvas["width"] - 20, canvas["y"] + canvas["height"] - 200)  # above the minimap
    for _ in range(2):   # pan left by dragging the background, twice
        assert editor.js("([x, y]) => document.elementFromPoint(x, y) === sdgraph.view.root", list(start))
        editor.drag(start, (start[0] - 700, start[1]))
    expect(editor.node(9)).to_be_visible()
    editor.node(9).locator(".node-title-text").click()
    assert editor.js("() => [...sdgraph.view.selection]") == [9]

