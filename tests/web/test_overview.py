"""Zoomed out, the editor draws nodes and links on one canvas (the overview) instead of the DOM, and
everything a pointer does there still works: select, move, connect. Zoomed back in, the DOM nodes
return with their widgets, and links still meet their sockets."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.editor_page import EditorPage

OVERVIEW_SCALE = 0.3
GEOMETRY = "(id) => [sdgraph.view.nodeBox(sdgraph.graph.nodes.get(id)), sdgraph.view.socketPosition(id, 'in', 1)]"


def to_screen(editor: EditorPage, world: list[float]) -> tuple[float, float]:
    x, y = editor.js("""([x, y]) => { const v = sdgraph.view, r = v.root.getBoundingClientRect();
        return [r.left + (x + v.offset[0]) * v.scale, r.top + (y + v.offset[1]) * v.scale]; }""", world)
    return x, y


def title_point(editor: EditorPage, node_id: int) -> tuple[float, float]:
    box = editor.js("(id) => sdgraph.view.nodeBox(sdgraph.graph.nodes.get(id))", node_id)
    return to_screen(editor, [box[0] + box[2] / 2, box[1] + 10])


def overview_alpha(editor: EditorPage, point: tuple[float, float]) -> int:
    """The overview canvas's opacity at a client point (0: nothing drawn there)."""
    return editor.js("""([x, y]) => {
        const c = document.querySelector('.overview-layer'), r = c.getBoundingClientRect(), k = c.width / r.width;
        const pixel = c.getContext('2d').getImageData(Math.round((x - r.left) * k), Math.round((y - r.top) * k), 1, 1);
        return pixel.data[3]; }""", list(point))


def zoom_to(editor: EditorPage, scale: float) -> None:
    editor.js("(scale) => sdgraph.view.setViewport({ scale, offset: [200, 200] })", scale)


def test_zoomed_out_nodes_are_drawn_on_a_canvas_where_links_still_meet_their_sockets(editor: EditorPage):
    socket = "() => sdgraph.view.socketPosition(3, 'in', 0)"
    before = editor.js(socket)
    expect(editor.widget(3, "steps")).to_be_visible()
    expect(editor.page.locator(".overview-layer")).to_be_hidden()

    zoom_to(editor, OVERVIEW_SCALE)
    expect(editor.page.locator(".overview-layer")).to_be_visible()
    assert editor.js("() => document.querySelector('.canvas .node[data-node-id=\"3\"]')"
                     ".checkVisibility({ visibilityProperty: true })") is False
    assert editor.js(socket) == before
    editor.page.wait_for_function("() => !sdgraph.view.overview.frame")   # the frame that draws it has run
    assert overview_alpha(editor, title_point(editor, 3)) == 255
    assert overview_alpha(editor, tuple(editor.empty_point())) == 0

    zoom_to(editor, 1)
    expect(editor.page.locator(".overview-layer")).to_be_hidden()
    expect(editor.widget(3, "steps")).to_be_visible()
    expect(editor.node(3).locator(".node-title-text")).to_be_visible()
    assert editor.js(socket) == before


def test_in_the_overview_clicking_a_node_selects_it_and_dragging_moves_it(editor: EditorPage):
    zoom_to(editor, OVERVIEW_SCALE)
    editor.page.mouse.click(*title_point(editor, 3))
    assert editor.js("() => [...sdgraph.view.selection]") == [3]

    before = editor.js("() => [...sdgraph.graph.nodes.get(3).pos]")
    start = title_point(editor, 3)
    editor.drag(start, (start[0] + 60, start[1] + 30))
    after = editor.js("() => [...sdgraph.graph.nodes.get(3).pos]")
    assert abs(after[0] - before[0] - 60 / OVERVIEW_SCALE) < 2 and abs(after[1] - before[1] - 30 / OVERVIEW_SCALE) < 2

    editor.page.mouse.click(*editor.empty_point())
    assert editor.js("() => [...sdgraph.view.selection]") == []

    editor.page.mouse.dblclick(*title_point(editor, 3))     # a node, not the canvas: no palette
    assert editor.js("() => [...sdgraph.view.selection]") == [3]
    expect(editor.page.locator(".palette")).to_be_hidden()
    assert editor.page.locator(".title-editor").count() == 0


def test_in_the_overview_dragging_from_socket_to_socket_connects(editor: EditorPage):
    editor.js("() => sdgraph.graph.disconnectInput(3, 0)")      # KSampler's model
    assert "model" not in editor.links_into(3)
    zoom_to(editor, OVERVIEW_SCALE)
    source = to_screen(editor, editor.js("() => sdgraph.view.socketPosition(4, 'out', 0)"))
    target = to_screen(editor, editor.js("() => sdgraph.view.socketPosition(3, 'in', 0)"))
    editor.drag(source, target)
    assert editor.links_into(3)["model"] == 4


def test_a_node_added_in_the_overview_is_measured_as_when_it_is_drawn(editor: EditorPage):
    zoom_to(editor, OVERVIEW_SCALE)
    added = editor.js("() => sdgraph.addNode('VAEDecode', [900, 700]).id")
    hidden = editor.js(GEOMETRY, added)
    zoom_to(editor, 1)
    expect(editor.node(added)).to_be_visible()
    editor.js("(id) => sdgraph.view.renderNodes([id])", added)    # measured again, now drawn
    shown = editor.js(GEOMETRY, added)
    assert all(abs(a - b) < 1 for a, b in zip(hidden[0] + hidden[1], shown[0] + shown[1], strict=True))
    assert hidden[0][2] >= 180 and hidden[1][1] > 700      # the vae socket sits below the top of the body


def test_while_the_view_is_panned_the_overview_draws_it_and_the_dom_returns_when_the_pan_stops(editor: EditorPage):
    zoom_to(editor, 1)
    editor.js("""() => { window.overviewSeen = false;
        new MutationObserver(() => { window.overviewSeen ||= sdgraph.view.root.classList.contains('overview'); })
            .observe(sdgraph.view.root, { attributes: true, attributeFilter: ['class'] }); }""")
    start = editor.empty_point()
    editor.drag(start, (start[0] + 80, start[1] - 40))
    editor.page.wait_for_function("() => !sdgraph.view.moving")
    assert editor.js("() => window.overviewSeen") is True
    expect(editor.page.locator(".overview-layer")).to_be_hidden()
    expect(editor.widget(3, "steps")).to_be_visible()
    editor.set_widget(3, "steps", 12)
    assert editor.widget_value(3, "steps") == 12
