"""Groups in the editor: created around the selection or on the empty canvas, renamed, recoloured,
resized and deleted (with or without their nodes); moving a group by its title moves its nodes."""

from __future__ import annotations

from tests.web.editor_page import EditorPage


def groups(editor: EditorPage) -> list[dict]:
    return editor.workflow()["groups"]


def positions(editor: EditorPage) -> dict[int, list[float]]:
    return {n["id"]: n["pos"] for n in editor.workflow()["nodes"]}


def menu_item(editor: EditorPage, label: str):
    return editor.page.locator(".menu .menu-item", has_text=label).first


def group_title(editor: EditorPage, index: int = 0):
    return editor.page.locator(f'.group[data-group="{index}"] .group-title')


def test_group_the_selection_rename_recolour_resize_and_move_it_with_its_nodes(editor: EditorPage):
    page = editor.page
    editor.node(6).locator(".node-title").click()
    editor.node(7).locator(".node-title").click(modifiers=["Shift"])
    x, y = editor.empty_point()
    page.mouse.click(x, y, button="right")
    menu_item(editor, "Group the 2 selected node(s)").click()
    [group] = groups(editor)
    gx, gy, gw, gh = group["bounding"]
    boxes = editor.js("() => [6, 7].map((id) => sdgraph.view.nodeBox(sdgraph.graph.nodes.get(id)))")
    for bx, by, bw, bh in boxes:
        assert gx < bx and gy < by and bx + bw < gx + gw and by + bh < gy + gh
    assert editor.js("() => sdgraph.pointer.nodesInGroup(0)") == [6, 7]

    # rename: double-click the title, type, Enter
    group_title(editor).dblclick()
    page.locator(".group-title-editor").fill("Prompts")
    page.keyboard.press("Enter")
    assert groups(editor)[0]["title"] == "Prompts"
    assert group_title(editor).inner_text() == "Prompts"

    # recolour from the group's menu
    group_title(editor).click(button="right")
    menu_item(editor, "Colour").hover()
    editor.page.locator(".submenu .menu-item", has_text="green").click()
    assert groups(editor)[0]["color"] == "#8A8"

    # resize by the bottom-right corner: the nodes stay where they are
    before = positions(editor)
    scale = editor.js("() => sdgraph.view.scale")
    editor.drag(editor.centre(page.locator(".group-resize")), tuple(v + d for v, d in
                zip(editor.centre(page.locator(".group-resize")), (120, 60))))
    _, _, w2, h2 = groups(editor)[0]["bounding"]
    assert abs(w2 - (gw + 120 / scale)) <= 2 and abs(h2 - (gh + 60 / scale)) <= 2
    assert positions(editor) == before

    # moving the group by its title moves its nodes, and only those
    start = editor.centre(group_title(editor))
    editor.drag(start, (start[0] + 80, start[1] + 40))
    after = positions(editor)
    moved = groups(editor)[0]["bounding"]
    assert abs(moved[0] - (gx + 80 / scale)) <= 1 and abs(moved[1] - (gy + 40 / scale)) <= 1
    for node_id in (6, 7):
        assert abs(after[node_id][0] - before[node_id][0] - 80 / scale) <= 1
        assert abs(after[node_id][1] - before[node_id][1] - 40 / scale) <= 1
    for node_id in (3, 4, 5, 8, 9):
        assert after[node_id] == before[node_id]

    # the group survives saving: it is in the UI format as ComfyUI writes it
    assert set(groups(editor)[0]) >= {"title", "bounding", "color"}


def test_delete_a_group_without_then_with_its_nodes(editor: EditorPage):
    page = editor.page
    editor.node(6).locator(".node-title").click()
    editor.node(7).locator(".node-title").click(modifiers=["Shift"])
    page.keyboard.press("Control+g")
    assert len(groups(editor)) == 1

    group_title(editor).click(button="right")
    menu_item(editor, "Delete group").click()
    assert groups(editor) == []
    assert editor.node_ids() == [3, 4, 5, 6, 7, 8, 9]

    page.keyboard.press("Control+z")
    assert len(groups(editor)) == 1
    group_title(editor).click(button="right")
    menu_item(editor, "Delete group and its 2 node(s)").click()
    assert groups(editor) == []
    assert editor.node_ids() == [3, 4, 5, 8, 9]
    assert "positive" not in editor.links_into(3)

    page.keyboard.press("Control+z")
    assert editor.node_ids() == [3, 4, 5, 6, 7, 8, 9] and len(groups(editor)) == 1


def test_a_group_on_the_empty_canvas(editor: EditorPage):
    page = editor.page
    x, y = editor.empty_point()
    page.mouse.click(x, y)                       # nothing selected
    page.mouse.click(x, y, button="right")
    menu_item(editor, "Add group").click()
    [group] = groups(editor)
    wx, wy = editor.js("([x, y]) => sdgraph.view.toWorld(x, y)", [x, y])
    assert abs(group["bounding"][0] - wx) <= 1 and abs(group["bounding"][1] - wy) <= 1
    assert group["bounding"][2:] == [400, 300]
    assert editor.js("() => sdgraph.pointer.nodesInGroup(0)") == []
