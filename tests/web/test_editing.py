"""Editing with the mouse and keyboard: connect and disconnect by dragging (an incompatible drop
refused), the palette, selection, copy/paste, delete, bypass/mute, widgets converted to inputs
and back, undo/redo, zoom and pan, and the graph surviving a reload."""

from __future__ import annotations

from tests.web.editor_page import EditorPage


def test_connect_and_disconnect_by_dragging_and_refuse_an_incompatible_drop(editor: EditorPage):
    assert editor.links_into(3)["positive"] == 6
    links = editor.page.locator(".link-layer path.link")

    # drag the link off KSampler's positive input onto the empty canvas: disconnected
    editor.drag(editor.centre(editor.socket(3, "in", "positive")), editor.empty_point())
    assert "positive" not in editor.links_into(3)
    assert links.count() == 8

    # drag from the negative prompt's output to the free input: connected
    editor.drag_between(editor.socket(7, "out", "CONDITIONING"), editor.socket(3, "in", "positive"))
    assert editor.links_into(3)["positive"] == 7
    assert links.count() == 9

    # a linked input picks its link up: dropped on the canvas it is gone
    editor.drag(editor.centre(editor.socket(3, "in", "positive")), editor.empty_point())
    assert "positive" not in editor.links_into(3)
    # a free input drags a new link back to an output
    editor.drag_between(editor.socket(3, "in", "positive"), editor.socket(6, "out", "CONDITIONING"))
    assert editor.links_into(3)["positive"] == 6

    # MODEL into VAEDecode's LATENT input is refused, with the reason, and changes nothing
    before = editor.workflow()
    editor.drag_between(editor.socket(4, "out", "MODEL"), editor.socket(8, "in", "samples"))
    assert editor.workflow()["links"] == before["links"]
    assert editor.links_into(8)["samples"] == 3
    assert any("Cannot connect MODEL" in text and "LATENT" in text for text in editor.toasts())
    # two outputs are refused too
    editor.drag_between(editor.socket(4, "out", "VAE"), editor.socket(8, "out", "IMAGE"))
    assert editor.workflow()["links"] == before["links"]

    # a link dropped on a node's body goes to its first free input of that type
    editor.drag(editor.centre(editor.socket(8, "in", "vae")), editor.empty_point())
    assert "vae" not in editor.links_into(8)
    editor.drag(editor.centre(editor.socket(4, "out", "VAE")), editor.centre(editor.node(8).locator(".node-title")))
    assert editor.links_into(8)["vae"] == 4

    # undo steps back through the edits, redo forward again
    editor.page.click("#btn-undo")
    assert "vae" not in editor.links_into(8)
    editor.page.keyboard.press("Control+z")
    editor.page.keyboard.press("Control+y")
    editor.page.click("#btn-redo")
    assert editor.links_into(8)["vae"] == 4


def test_add_a_node_from_the_palette_then_select_copy_paste_and_delete(editor: EditorPage):
    x, y = editor.empty_point()
    editor.page.mouse.dblclick(x, y - 200)
    palette = editor.page.locator(".palette")
    palette.locator("input").fill("invert")
    assert palette.locator(".palette-item").first.inner_text().startswith("Invert")
    editor.page.keyboard.press("Enter")
    assert palette.is_hidden()
    added = max(editor.node_ids())
    assert editor.workflow()["nodes"][-1]["type"] == "ImageInvert"
    assert "selected" in editor.node(added).get_attribute("class")

    # connect it: VAE Decode's IMAGE into the new node
    editor.drag_between(editor.socket(8, "out", "IMAGE"), editor.socket(added, "in", "image"))
    assert editor.links_into(added) == {"image": 8}

    # box select (Ctrl + drag) around the two prompt nodes
    first = editor.node(6).bounding_box()
    second = editor.node(7).bounding_box()
    editor.drag((first["x"] - 10, first["y"] - 10),
                (second["x"] + second["width"] + 10, second["y"] + second["height"] + 10), modifiers=("Control",))
    assert sorted(editor.js("() => [...sdgraph.view.selection]")) == [6, 7]

    # copy and paste them: two new nodes with the same widgets, their clip inputs free
    editor.page.keyboard.press("Control+c")
    editor.page.mouse.move(*editor.empty_point())
    editor.page.keyboard.press("Control+v")
    pasted = sorted(editor.js("() => [...sdgraph.view.selection]"))
    assert len(pasted) == 2 and min(pasted) > added
    assert {editor.widget_value(i, "text") for i in pasted} == {"a red circle on a blue background, center", ""}
    assert all(editor.links_into(i) == {} for i in pasted)

    # delete removes the selection and its links
    editor.page.keyboard.press("Delete")
    assert not set(pasted) & set(editor.node_ids())
    editor.node(added).locator(".node-title").click()
    editor.page.keyboard.press("Delete")
    assert added not in editor.node_ids()
    assert len(editor.workflow()["links"]) == 9


def test_move_bypass_mute_and_convert_a_widget_to_an_input(editor: EditorPage):
    # move a node by its title
    before = next(n["pos"] for n in editor.workflow()["nodes"] if n["id"] == 8)
    title = editor.centre(editor.node(8).locator(".node-title-text"))
    editor.drag(title, (title[0] + 60, title[1] + 90))
    after = next(n["pos"] for n in editor.workflow()["nodes"] if n["id"] == 8)
    scale = editor.js("() => sdgraph.view.scale")
    assert abs(after[0] - before[0] - 60 / scale) < 2 and abs(after[1] - before[1] - 90 / scale) < 2

    # bypass (Ctrl+B) and mute (Ctrl+M) the selected node; again to undo it
    editor.page.keyboard.press("Control+b")
    assert "bypassed" in editor.node(8).get_attribute("class")
    assert next(n["mode"] for n in editor.workflow()["nodes"] if n["id"] == 8) == 4
    editor.page.keyboard.press("Control+m")
    assert next(n["mode"] for n in editor.workflow()["nodes"] if n["id"] == 8) == 2
    editor.page.keyboard.press("Control+m")
    assert next(n["mode"] for n in editor.workflow()["nodes"] if n["id"] == 8) == 0

    # the context menu turns the seed widget into an input socket, and back
    editor.node(3).locator(".node-title").click(button="right")
    editor.page.locator(".menu-item", has_text="Convert widget to input").hover()
    editor.page.locator(".submenu .menu-item", has_text="seed").click()
    assert editor.socket(3, "in", "seed").count() == 1
    assert editor.widget(3, "seed").count() == 0
    node = next(n for n in editor.workflow()["nodes"] if n["id"] == 3)
    assert {"name": "seed", "type": "INT", "link": None, "widget": {"name": "seed"}} in node["inputs"]
    assert node["widgets_values"][:2] == [42, "fixed"]   # the widget keeps its slot
    editor.node(3).locator(".node-title").click(button="right")
    editor.page.locator(".menu-item", has_text="Convert input to widget").hover()
    editor.page.locator(".submenu .menu-item", has_text="seed").click()
    assert editor.widget(3, "seed").count() == 1 and editor.socket(3, "in", "seed").count() == 0


def test_zoom_around_the_pointer_pan_and_fit(editor: EditorPage):
    title = editor.node(3).locator(".node-title-text")
    x, y = editor.centre(title)
    world_before = editor.js("([x, y]) => sdgraph.view.toWorld(x, y)", [x, y])
    scale_before = editor.js("() => sdgraph.view.scale")
    editor.page.mouse.move(x, y)
    editor.page.mouse.wheel(0, -300)
    editor.page.wait_for_function("(s) => sdgraph.view.scale > s", arg=scale_before)
    world_after = editor.js("([x, y]) => sdgraph.view.toWorld(x, y)", [x, y])
    assert abs(world_after[0] - world_before[0]) < 1 and abs(world_after[1] - world_before[1]) < 1

    offset = editor.js("() => sdgraph.view.offset")
    start = editor.empty_point()
    editor.drag(start, (start[0] + 100, start[1] - 50))
    moved = editor.js("() => sdgraph.view.offset")
    scale = editor.js("() => sdgraph.view.scale")
    assert abs((moved[0] - offset[0]) * scale - 100) < 2 and abs((moved[1] - offset[1]) * scale + 50) < 2

    editor.page.click("#btn-fit")
    canvas = editor.page.locator(".canvas").bounding_box()
    for node_id in editor.node_ids():
        box = editor.node(node_id).bounding_box()
        assert box["x"] >= canvas["x"] and box["x"] + box["width"] <= canvas["x"] + canvas["width"] + 1
        assert box["y"] >= canvas["y"] and box["y"] + box["height"] <= canvas["y"] + canvas["height"] + 1


def test_a_reload_finds_the_graph_as_it_was_left(editor: EditorPage):
    editor.set_widget(6, "text", "kept across reloads")
    editor.set_widget(5, "width", 320)
    editor.drag(editor.centre(editor.socket(3, "in", "negative")), editor.empty_point())
    x, y = editor.empty_point()
    editor.page.mouse.dblclick(x, y - 150)
    editor.page.locator(".palette input").fill("preview image")
    editor.page.keyboard.press("Enter")
    before = editor.workflow()

    editor.reload()
    after = editor.workflow()
    assert after["nodes"] == before["nodes"] and after["links"] == before["links"]
    assert editor.widget(6, "text").locator("textarea").input_value() == "kept across reloads"
    assert editor.widget(5, "width").locator("input").input_value() == "320"
    assert "negative" not in editor.links_into(3)
    assert editor.page.locator('.canvas .node[data-type="PreviewImage"]').count() == 1
