"""Reroutes, links, the minimap and model-aware defaults: a reroute is small and typed by what flows
through it, so a mismatched link through it is refused as a direct one is; clicking a link offers
delete and insert-reroute; the minimap shows the graph and moves the view; a new Empty Latent takes
the size of the graph's checkpoint."""

from __future__ import annotations

from tests.web.editor_page import EditorPage

LINK_POINT = """(linkId) => {
    // A point on the link's curve not covered by a node, in client coordinates.
    const path = document.querySelector(`.link-layer path.link[data-link-id="${linkId}"]`);
    const length = path.getTotalLength();
    for (let f = 0.5; f < 1; f += 0.02) for (const at of [f, 1 - f]) {
        const p = path.getPointAtLength(length * at);
        const q = new DOMPoint(p.x, p.y).matrixTransform(path.getScreenCTM());
        if (document.elementFromPoint(q.x, q.y) === path) return [q.x, q.y];
    }
    throw new Error("the link is covered everywhere");
}"""


def link_id(editor: EditorPage, origin: int, target: int, target_input: str) -> int:
    ui = editor.workflow()
    node = next(n for n in ui["nodes"] if n["id"] == target)
    link = next(i["link"] for i in node["inputs"] if i["name"] == target_input)
    assert next(entry for entry in ui["links"] if entry[0] == link)[1] == origin
    return link


def click_link(editor: EditorPage, link: int) -> None:
    x, y = editor.js(LINK_POINT, link)
    editor.page.mouse.click(x, y)
    editor.page.locator(".menu.link-menu").wait_for()


def reroute_ids(editor: EditorPage) -> list[int]:
    return [n["id"] for n in editor.workflow()["nodes"] if n["type"] == "Reroute"]


def node_json(editor: EditorPage, node_id: int) -> dict:
    return next(n for n in editor.workflow()["nodes"] if n["id"] == node_id)


def test_clicking_a_link_deletes_it_or_inserts_a_typed_reroute(editor: EditorPage):
    page = editor.page
    # delete: VAEDecode loses its vae input
    click_link(editor, link_id(editor, 4, 8, "vae"))
    page.locator(".menu-item", has_text="Delete link").click()
    assert "vae" not in editor.links_into(8)
    page.keyboard.press("Control+z")
    assert editor.links_into(8)["vae"] == 4

    # insert a reroute on the MODEL link: checkpoint → reroute → KSampler, the reroute typed MODEL
    click_link(editor, link_id(editor, 4, 3, "model"))
    page.locator(".menu-item", has_text="Insert reroute").click()
    [reroute] = reroute_ids(editor)
    assert editor.links_into(3)["model"] == reroute
    assert editor.links_into(reroute) == {"": 4}
    node = node_json(editor, reroute)
    assert node["inputs"][0]["type"] == node["outputs"][0]["type"] == "MODEL"
    assert {entry[5] for entry in editor.workflow()["links"] if reroute in (entry[1], entry[3])} == {"MODEL"}
    # small: narrower than any other node
    box = editor.node(reroute).bounding_box()
    assert box["width"] < 90 and box["height"] < 60

    # a mismatched link through the reroute is refused like a direct one
    before = editor.workflow()["links"]
    editor.drag_between(editor.socket(reroute, "out", ""), editor.socket(8, "in", "samples"))
    assert editor.workflow()["links"] == before
    assert any("Cannot connect MODEL" in text and "LATENT" in text for text in editor.toasts())
    # and into it: a CLIP output cannot feed a reroute that carries MODEL
    editor.drag_between(editor.socket(4, "out", "CLIP"), editor.socket(reroute, "in", ""))
    assert editor.workflow()["links"] == before
    assert editor.links_into(reroute) == {"": 4}

    # one edit: undo brings the direct link back, redo the typed reroute
    page.keyboard.press("Control+z")
    assert reroute_ids(editor) == [] and editor.links_into(3)["model"] == 4
    page.keyboard.press("Control+y")
    assert editor.links_into(3)["model"] == reroute and node_json(editor, reroute)["outputs"][0]["type"] == "MODEL"

    # the workflow still runs through the reroute (the server resolves it as ComfyUI does)
    api = editor.js("async () => (await sdgraph.api.convert(sdgraph.graph.toJSON()))")
    prompt = api.get("prompt", api)
    assert prompt["3"]["inputs"]["model"] == ["4", 0]


def test_an_untyped_reroute_takes_the_type_downstream_and_refuses_another(editor: EditorPage):
    reroute = editor.js("() => sdgraph.addNode('Reroute', [100, 700]).id")
    assert node_json(editor, reroute)["outputs"][0]["type"] == "*"
    editor.drag(editor.centre(editor.socket(8, "in", "vae")), editor.empty_point())
    editor.drag_between(editor.socket(reroute, "out", ""), editor.socket(8, "in", "vae"))
    assert editor.links_into(8)["vae"] == reroute
    assert node_json(editor, reroute)["inputs"][0]["type"] == "VAE"
    editor.drag_between(editor.socket(4, "out", "MODEL"), editor.socket(reroute, "in", ""))
    assert editor.links_into(reroute) == {}
    assert any("Cannot connect MODEL" in text for text in editor.toasts())
    editor.drag_between(editor.socket(4, "out", "VAE"), editor.socket(reroute, "in", ""))
    assert editor.links_into(reroute) == {"": 4}


def test_the_minimap_shows_the_graph_and_moves_the_view(editor: EditorPage):
    minimap = editor.page.locator(".canvas canvas.minimap")
    assert minimap.is_visible()
    # something is drawn: node boxes and the view's frame
    drawn = editor.js("""() => { const c = document.querySelector('.minimap');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const colours = new Set();
        for (let i = 0; i < d.length; i += 4) colours.add(d[i] << 16 | d[i + 1] << 8 | d[i + 2]);
        return colours.size; }""")
    assert drawn >= 3
    box = minimap.bounding_box()
    target = (box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.3)
    expected = editor.js("""([x, y]) => {
        const m = sdgraph.minimap.last, b = sdgraph.minimap.canvas.getBoundingClientRect();
        return [(x - b.left - m.ox) / m.scale, (y - b.top - m.oy) / m.scale]; }""", list(target))
    editor.page.mouse.click(*target)
    centre = editor.js("""() => { const r = sdgraph.view.root.getBoundingClientRect();
        return sdgraph.view.toWorld(r.left + r.width / 2, r.top + r.height / 2); }""")
    assert abs(centre[0] - expected[0]) < 2 and abs(centre[1] - expected[1]) < 2
    # clicking the minimap neither selected nor deselected anything nor opened the palette
    assert editor.page.locator(".palette").count() == 0 or not editor.page.locator(".palette").is_visible()


def test_a_new_empty_latent_takes_the_size_of_the_graph_checkpoint(editor: EditorPage):
    assert editor.widget_value(4, "ckpt_name") == "demo-shapes.safetensors"   # txt2img.json, as shipped
    editor.add_from_palette("Empty Latent Image")
    added = max(editor.node_ids())
    assert node_json(editor, added)["type"] == "EmptyLatentImage"
    assert (editor.widget_value(added, "width"), editor.widget_value(added, "height")) == (64, 64)
    assert editor.widget(added, "width").locator("input").input_value() == "64"

    # another SD1.x checkpoint: the node's own default, 512
    editor.choose(4, "ckpt_name", "tiny-sd15-random.safetensors")
    editor.page.click("#btn-add")        # the first one sits where a double-click would open the palette
    editor.page.locator(".palette input").fill("Empty Latent Image")
    editor.page.keyboard.press("Enter")
    added = max(editor.node_ids())
    assert (editor.widget_value(added, "width"), editor.widget_value(added, "height")) == (512, 512)
