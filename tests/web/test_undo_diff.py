"""Undo and redo apply a snapshot as a diff (only the nodes a step changed are replaced and redrawn),
and still bring back exactly the workflow JSON of before and after each kind of edit."""

from __future__ import annotations

import pytest

from tests.web.editor_page import EditorPage

DOCUMENT = "() => { const w = sdgraph.graph.toJSON(); delete w.extra.ds; return JSON.stringify(w); }"

EDITS = {
    "add": "() => sdgraph.addNode('VAEDecode', [900, 500])",
    "connect": "() => sdgraph.graph.connect(4, 2, 8, 1)",                     # checkpoint VAE → VAE Decode (replaces)
    "disconnect": "() => sdgraph.graph.disconnectInput(3, 0)",
    "delete": "() => { sdgraph.view.select([6]); sdgraph.deleteSelected(); }",
    "move": "() => { sdgraph.graph.moveNodes([3, 5], 40, -25); sdgraph.graph.changed('move', { nodes: [3, 5] }); }",
    "widget": "() => { const g = sdgraph.graph; g.setWidgetValue(g.nodes.get(3), 'steps', 9); sdgraph.recordUndo(); }",
    "title": "() => { const g = sdgraph.graph; g.setTitle(g.nodes.get(7), 'Not this'); }",
    "mode": "() => sdgraph.graph.setMode([9], 4)",
    "widget to input": "() => { const g = sdgraph.graph; g.convertWidgetToInput(g.nodes.get(3), 'cfg'); }",
}


def drawn(editor: EditorPage) -> dict:
    """What the canvas shows: node ids, link ids, and a widget value read from the DOM."""
    return editor.js("""() => {
        const ids = (selector, key) => [...document.querySelectorAll(selector)].map((el) => Number(el.dataset[key]))
            .sort((a, b) => a - b);
        const steps = document.querySelector('.canvas .node[data-node-id="3"] .widget[data-widget="steps"] input');
        return { nodes: ids('.canvas .node', 'nodeId'), links: ids('.link-layer path.link', 'linkId'),
                 steps: steps ? steps.value : null };
    }""")


def expected_drawing(editor: EditorPage) -> dict:
    ui = editor.workflow()
    steps = next((n for n in ui["nodes"] if n["id"] == 3), None)
    return {"nodes": sorted(n["id"] for n in ui["nodes"]), "links": sorted(link[0] for link in ui["links"]),
            "steps": str(steps["widgets_values"][2]) if steps else None}


@pytest.mark.parametrize("edit", list(EDITS))
def test_undo_and_redo_restore_exactly_the_workflow_before_and_after_an_edit(editor: EditorPage, edit: str):
    before = editor.js(DOCUMENT)
    editor.js(EDITS[edit])
    after = editor.js(DOCUMENT)
    assert after != before

    editor.js("() => sdgraph.undoStep()")
    assert editor.js(DOCUMENT) == before
    assert drawn(editor) == expected_drawing(editor)

    editor.js("() => sdgraph.redoStep()")
    assert editor.js(DOCUMENT) == after
    assert drawn(editor) == expected_drawing(editor)


def test_an_undo_replaces_only_the_nodes_the_step_changed(editor: EditorPage):
    editor.js("""() => { window.keptNodes = new Map(sdgraph.graph.nodes);
        window.keptElements = new Map(sdgraph.view.elements); }""")
    editor.js(EDITS["move"])
    editor.js("() => sdgraph.undoStep()")
    replaced = editor.js("""() => [...sdgraph.graph.nodes.keys()]
        .filter((id) => sdgraph.graph.nodes.get(id) !== keptNodes.get(id)).sort((a, b) => a - b)""")
    assert replaced == [3, 5]
    rebuilt = editor.js("""() => [...sdgraph.view.elements.keys()]
        .filter((id) => sdgraph.view.elements.get(id) !== keptElements.get(id))""")
    assert rebuilt == []     # a move's undo moves the elements back, it does not rebuild them
    positions = editor.js("() => [sdgraph.view.elements.get(3).style.left, sdgraph.view.elements.get(3).style.top]")
    node = next(n for n in editor.workflow()["nodes"] if n["id"] == 3)
    assert positions == [f"{node['pos'][0]}px", f"{node['pos'][1] - 30}px"]


def test_a_recorded_snapshot_is_the_text_of_the_saved_workflow(editor: EditorPage):
    editor.js("""() => { const g = sdgraph.graph;
        g.setTitle(g.nodes.get(7), 'Negative');
        g.groups.push({ title: 'G', bounding: [0, 0, 100, 100] });
        g.extra.note = 'kept'; g.rest.models = [{ name: 'a.safetensors' }]; }""")
    texts = editor.js("""async () => { const undo = await import('/js/undo.js');
        return [undo.snapshotOfGraph(sdgraph.graph, 'a name'), undo.snapshotOf(sdgraph.graph.toJSON(), 'a name')]; }""")
    assert texts[0] == texts[1]
    assert '"models":[{"name":"a.safetensors"}]' in texts[0] and '"note":"kept"' in texts[0]
