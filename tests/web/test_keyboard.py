"""Issue 21: the editor without a pointer. A txt2img graph is built, filled in, queued and run with
the keyboard alone; menus move with arrow keys; the palette is a listbox; the focus is always seen."""

from __future__ import annotations

import pytest

from tests.web.editor_page import EditorPage

pytestmark = pytest.mark.browser

TXT2IMG_NODES = ["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
                 "VAEDecode", "SaveImage"]

OUTLINE = "(s) => { const c = getComputedStyle(ELEMENT); return [c.outlineStyle, parseFloat(c.outlineWidth)]; }"


def node_sel(node_id: int) -> str:
    return f'.canvas .node[data-node-id="{node_id}"]'


def socket_sel(node_id: int, direction: str, name: str) -> str:
    return f'{node_sel(node_id)} .socket.{direction}[data-name="{name}"]'


def widget_sel(node_id: int, name: str, control: str = ".widget-input") -> str:
    return f'{node_sel(node_id)} .widget[data-widget="{name}"] {control}'


def focused_text(editor: EditorPage) -> str:
    """The label of the focused menu item (or the first text of whatever has the focus)."""
    editor.page.wait_for_function("() => document.activeElement !== document.body")
    return editor.js("() => document.activeElement.firstChild?.textContent ?? ''")


def open_workflow_menu(editor: EditorPage) -> None:
    """Tab to "Workflow ▾" and press Enter: the menu opens with its first item focused."""
    editor.tab_to("#btn-workflow")
    editor.page.keyboard.press("Enter")
    editor.page.locator(".menu .menu-item:focus").wait_for()
    assert focused_text(editor) == "New (empty)"


def add_by_keyboard(editor: EditorPage, node_type: str) -> int:
    """"+ Node", type the class name, Enter: the new node has the focus; returns its id."""
    editor.tab_to("#btn-add")
    editor.page.keyboard.press("Enter")
    assert editor.focused(".palette-search")
    editor.page.keyboard.type(node_type)
    active = editor.page.locator('.palette-list [role="option"][aria-selected="true"]')
    assert active.get_attribute("data-type") == node_type
    editor.page.keyboard.press("Enter")
    editor.page.wait_for_function("() => document.activeElement.matches('.canvas .node')")
    return int(editor.js("() => document.activeElement.dataset.nodeId"))


def connect_by_keyboard(editor: EditorPage, source: tuple[int, str], target: tuple[int, str]) -> None:
    editor.tab_to(socket_sel(source[0], "out", source[1]))
    editor.page.keyboard.press("Enter")
    assert editor.page.locator(".socket.link-source").count() == 1
    editor.tab_to(socket_sel(target[0], "in", target[1]))
    editor.page.keyboard.press("Enter")
    assert editor.page.locator(".socket.link-source").count() == 0


def type_number(editor: EditorPage, node_id: int, name: str, value: int) -> None:
    editor.tab_to(widget_sel(node_id, name))
    editor.page.keyboard.press("Control+A")
    editor.page.keyboard.type(str(value))
    editor.page.keyboard.press("Enter")


def test_a_txt2img_graph_is_built_and_run_from_the_keyboard_alone(editor: EditorPage, screenshots):
    page = editor.page
    open_workflow_menu(editor)
    page.keyboard.press("Enter")
    page.wait_for_function("() => sdgraph.graph.nodes.size === 0")

    ckpt, positive, negative, latent, sampler, decode, save = (add_by_keyboard(editor, t) for t in TXT2IMG_NODES)
    boxes = [editor.node(i).bounding_box() for i in (ckpt, positive, negative, latent, sampler, decode, save)]
    assert all(box for box in boxes), "every added node is drawn"
    assert not any(a["x"] == b["x"] and a["y"] == b["y"] for i, a in enumerate(boxes) for b in boxes[i + 1:]), \
        "nodes added from the keyboard do not pile up on one spot"

    links = [((ckpt, "MODEL"), (sampler, "model")), ((ckpt, "CLIP"), (positive, "clip")),
             ((ckpt, "CLIP"), (negative, "clip")), ((positive, "CONDITIONING"), (sampler, "positive")),
             ((negative, "CONDITIONING"), (sampler, "negative")), ((latent, "LATENT"), (sampler, "latent_image")),
             ((sampler, "LATENT"), (decode, "samples")), ((ckpt, "VAE"), (decode, "vae")),
             ((decode, "IMAGE"), (save, "images"))]
    for source, target in links:
        connect_by_keyboard(editor, source, target)
    assert editor.links_into(sampler) == {"model": ckpt, "positive": positive, "negative": negative,
                                          "latent_image": latent}
    assert editor.links_into(decode) == {"samples": sampler, "vae": ckpt}
    assert editor.links_into(save) == {"images": decode}

    # a refused connection is said, and nothing changes
    connect_from = socket_sel(latent, "out", "LATENT")
    editor.tab_to(connect_from)
    page.keyboard.press("Enter")
    editor.tab_to(socket_sel(decode, "in", "vae"))
    page.keyboard.press("Enter")
    assert any("VAE" in text for text in editor.toasts())
    page.keyboard.press("Escape")
    assert page.locator(".socket.link-source").count() == 0 and editor.links_into(decode)["vae"] == ckpt

    editor.tab_to(widget_sel(ckpt, "ckpt_name"))
    page.keyboard.type("tiny-sd15-random")
    assert editor.widget_value(ckpt, "ckpt_name") == "tiny-sd15-random.safetensors"
    editor.tab_to(widget_sel(positive, "text"))
    page.keyboard.type("a red circle on a white background")
    type_number(editor, latent, "width", 64)
    type_number(editor, latent, "height", 64)
    type_number(editor, sampler, "steps", 2)
    assert [editor.widget_value(latent, "width"), editor.widget_value(latent, "height")] == [64, 64]
    assert editor.widget_value(sampler, "steps") == 2
    assert editor.widget_value(positive, "text") == "a red circle on a white background"

    editor.tab_to("#btn-queue")
    page.keyboard.press("Enter")
    editor.wait_for_output_image(save)
    assert editor.page.locator(".toast.error").count() == 0
    editor.screenshot(screenshots / "keyboard-built-txt2img.png")


def test_menus_move_with_arrow_keys_and_give_the_focus_back(editor: EditorPage):
    page = editor.page
    open_workflow_menu(editor)
    page.keyboard.press("ArrowDown")
    assert focused_text(editor) == "New tab"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    assert focused_text(editor) == "Saved on the server…", "Up from the first item wraps to the last"
    page.keyboard.press("Home")
    assert focused_text(editor) == "New (empty)"
    page.keyboard.press("End")
    assert focused_text(editor) == "Saved on the server…"
    page.keyboard.press("Home")
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    assert focused_text(editor) == "Open shipped workflow"
    page.keyboard.press("ArrowRight")
    assert editor.focused(".submenu .menu-item")
    first_shipped = focused_text(editor)
    page.keyboard.press("ArrowDown")
    assert focused_text(editor) != first_shipped and editor.focused(".submenu .menu-item")
    page.keyboard.press("ArrowLeft")
    assert focused_text(editor) == "Open shipped workflow"
    page.keyboard.press("Escape")
    assert page.locator(".menu").count() == 0 and editor.focused("#btn-workflow")

    # a node's context menu from the keyboard (Shift+F10), moved through with arrows, acting on the node
    editor.tab_to(".canvas")
    page.keyboard.press("]")
    assert editor.focused(node_sel(3))
    page.keyboard.press("Shift+F10")
    assert focused_text(editor) == "Rename…"
    page.keyboard.press("ArrowDown")
    assert focused_text(editor) == "Bypass"
    page.keyboard.press("Enter")
    assert editor.workflow()["nodes"][[n["id"] for n in editor.workflow()["nodes"]].index(3)]["mode"] == 4
    assert editor.focused(node_sel(3)), "the focus goes back to the node"


def test_the_palette_is_a_listbox_of_options(editor: EditorPage):
    page = editor.page
    editor.tab_to(".canvas")
    page.keyboard.press("Enter")   # Enter on the canvas opens the palette, as "+ Node" does
    search = page.locator(".palette-search")
    assert editor.focused(".palette-search")
    assert search.get_attribute("role") == "combobox" and search.get_attribute("aria-expanded") == "true"
    listbox = page.locator(f'#{search.get_attribute("aria-controls")}')
    assert listbox.get_attribute("role") == "listbox"
    assert listbox.locator('[role="option"]').count() > 3, "the category folders are options too"
    page.keyboard.type("sampler")
    options = listbox.locator('[role="option"]')
    assert options.count() > 1 and options.count() == listbox.locator(":scope > *").count()
    selected = listbox.locator('[aria-selected="true"]')
    assert selected.count() == 1 and selected.get_attribute("id") == search.get_attribute("aria-activedescendant")
    first = selected.get_attribute("data-type")
    page.keyboard.press("ArrowDown")
    assert selected.count() == 1 and selected.get_attribute("data-type") != first
    assert options.nth(1).get_attribute("aria-selected") == "true"
    page.keyboard.press("Escape")
    assert page.locator(".palette").is_hidden() and search.get_attribute("aria-expanded") == "false"
    assert editor.focused(".canvas"), "Escape gives the focus back"


def test_nodes_move_with_arrows_and_an_input_is_unlinked_with_delete(editor: EditorPage):
    page = editor.page
    editor.tab_to(node_sel(3))
    assert editor.js("() => [...sdgraph.view.selection]") == [3], "the focused node is the selection"
    before = next(n["pos"] for n in editor.workflow()["nodes"] if n["id"] == 3)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowDown")
    after = next(n["pos"] for n in editor.workflow()["nodes"] if n["id"] == 3)
    assert after == [before[0] + 10, before[1] + 50]
    editor.tab_to(socket_sel(3, "in", "negative"))
    page.keyboard.press("Delete")
    assert "negative" not in editor.links_into(3) and 3 in editor.node_ids()
    assert editor.focused(socket_sel(3, "in", "negative"))
    page.keyboard.press("Control+z")
    page.wait_for_function("() => sdgraph.graph.nodes.get(3).inputs.find((i) => i.name === 'negative').link != null")


@pytest.mark.parametrize("selector", ["#btn-workflow", ".canvas", node_sel(3), socket_sel(3, "in", "model"),
                                      widget_sel(3, "steps"), "#btn-queue"])
def test_focused_elements_show_a_visible_focus_style(editor: EditorPage, selector: str):
    style = OUTLINE.replace("ELEMENT", "document.querySelector(s)")
    assert editor.js(style, selector)[0] == "none", "no outline unfocused"
    editor.tab_to(selector)
    outline_style, outline_width = editor.js(style, selector)
    assert outline_style != "none" and outline_width >= 2, f"{selector} focused shows an outline"


def test_a_focused_menu_item_shows_a_visible_focus_style(editor: EditorPage):
    open_workflow_menu(editor)
    editor.page.keyboard.press("ArrowDown")
    outline = editor.js(OUTLINE.replace("ELEMENT", "document.activeElement"))
    assert editor.focused(".menu-item") and outline[0] != "none" and outline[1] >= 2
