"""Editing details: rename a node by double-clicking its title, the palette's ranking and category
tree, number widgets changed by dragging and by arrow keys, and FLOATs keeping their precision."""

from __future__ import annotations

from tests.web.editor_page import EditorPage


def palette_results(editor: EditorPage, query: str) -> list[tuple[str, str]]:
    """(shown name, class name) of what the palette offers for a query, in its order."""
    items = editor.open_palette(query).locator(".palette-item")
    results = list(zip(items.locator(".palette-name").all_inner_texts(),
                       [item.get_attribute("data-type") for item in items.all()], strict=True))
    editor.page.keyboard.press("Escape")
    return results


def test_double_clicking_a_title_renames_the_node(editor: EditorPage):
    editor.node(6).locator(".node-title-text").dblclick()
    field = editor.node(6).locator("input.title-editor")
    field.wait_for()
    assert editor.page.locator(".palette").is_hidden()
    field.fill("Subject")
    field.press("Enter")
    assert editor.node(6).locator(".node-title-text").inner_text() == "Subject"
    assert next(n for n in editor.workflow()["nodes"] if n["id"] == 6)["title"] == "Subject"
    editor.page.keyboard.press("Control+z")
    assert editor.node(6).locator(".node-title-text").inner_text() == "Positive prompt"

    # Escape keeps the old title
    editor.node(6).locator(".node-title-text").dblclick()
    editor.node(6).locator("input.title-editor").fill("not kept")
    editor.node(6).locator("input.title-editor").press("Escape")
    assert editor.node(6).locator(".node-title-text").inner_text() == "Positive prompt"


def test_search_ranks_exact_and_prefix_matches_first_and_testing_nodes_last(editor: EditorPage):
    names = [name for name, _ in palette_results(editor, "vae decode")]
    assert names[0] == "VAE Decode"                    # the exact name
    assert names[-1] == "VAE Decode (Tiled)"           # category _for_testing

    results = palette_results(editor, "latent")
    starts = [name.lower().startswith("latent") or kind.lower().startswith("latent") for name, kind in results[:-1]]
    assert starts[0] and starts == sorted(starts, reverse=True)   # names that start with the word come first
    names = [name for name, _ in results]
    assert not starts[names.index("Empty Latent Image")]
    assert names[-1] == "Latent Blend"                 # _for_testing, though its name starts so

    # deprecated nodes go last too (none is installed here: the ranking itself, on declarations)
    ranked = editor.js("""async () => {
        const { rankNodes } = await import(new URL("js/palette.js", location.href).href);
        const def = (displayName, extra = {}) =>
            ({ displayName, type: displayName.replaceAll(" ", ""), category: "sampling", ...extra });
        const defs = [def("Sampler Old", { deprecated: true }), def("Fancy Sampler"), def("Sampler"),
                      def("Sampler Custom")];
        return rankNodes(defs, "sampler").map((d) => d.displayName);
    }""")
    assert ranked == ["Sampler", "Sampler Custom", "Fancy Sampler", "Sampler Old"]


def test_with_nothing_typed_the_palette_is_a_category_tree(editor: EditorPage):
    palette = editor.open_palette()
    folders = palette.locator(".palette-folder")
    top = [f.get_attribute("data-folder") for f in folders.all()]
    assert "sampling" in top and "latent" in top and top[-1] == "_for_testing"
    assert palette.locator(".palette-item").count() == 0   # every node is in a category

    palette.locator('.palette-folder[data-folder="sampling"]').click()
    assert "KSampler" in palette.locator(".palette-item .palette-name").all_inner_texts()
    # the keyboard walks the tree: down to the first entry inside "sampling", Enter adds it
    editor.page.keyboard.press("ArrowDown")
    active = palette.locator(".palette-item.active, .palette-folder.active")
    assert active.get_attribute("data-type") or active.get_attribute("data-folder")
    while active.get_attribute("data-type") is None:
        editor.page.keyboard.press("ArrowDown")
    chosen = active.get_attribute("data-type")
    editor.page.keyboard.press("Enter")
    assert palette.is_hidden()
    assert editor.workflow()["nodes"][-1]["type"] == chosen


def test_number_widgets_change_by_dragging_their_label_and_by_arrow_keys(editor: EditorPage):
    steps = editor.widget_value(3, "steps")
    position = next(n["pos"] for n in editor.workflow()["nodes"] if n["id"] == 3)
    label = editor.widget(3, "steps").locator(".widget-label")
    x, y = editor.centre(label)
    editor.drag((x, y), (x + 50, y))                   # 5 px a step
    assert editor.widget_value(3, "steps") == steps + 10
    assert editor.widget(3, "steps").locator("input").input_value() == str(steps + 10)
    assert next(n["pos"] for n in editor.workflow()["nodes"] if n["id"] == 3) == position   # not a node move
    editor.drag((x, y), (x - 25, y))
    assert editor.widget_value(3, "steps") == steps + 5
    editor.page.wait_for_timeout(600)                  # one undo step for the gesture
    editor.page.keyboard.press("Control+z")
    assert editor.widget_value(3, "steps") == steps

    cfg = editor.widget(3, "cfg").locator("input")
    start = editor.widget_value(3, "cfg")
    cfg.press("ArrowUp")                               # step 0.1
    assert editor.widget_value(3, "cfg") == round(start + 0.1, 2)
    cfg.press("Shift+ArrowDown")                       # ten steps
    assert editor.widget_value(3, "cfg") == round(start - 0.9, 2)
    assert cfg.input_value() == str(round(start - 0.9, 2))


def test_a_float_keeps_its_round_precision(editor: EditorPage):
    editor.set_widget(3, "cfg", 7.25)                  # step 0.1, round 0.01
    assert editor.widget_value(3, "cfg") == 7.25
    assert editor.widget(3, "cfg").locator("input").input_value() == "7.25"
    editor.set_widget(3, "denoise", 0.555)             # step 0.01, no round: the step's precision
    assert editor.widget_value(3, "denoise") == 0.56
    editor.reload()
    assert editor.widget_value(3, "cfg") == 7.25
    assert editor.widget(3, "cfg").locator("input").input_value() == "7.25"
