"""An edit redraws the nodes it touches, not the graph: adding or deleting a node leaves every other
node's element as it was (a big graph's add costs one node), yet a Reroute whose type the edit
changed is redrawn with its new type, and the autosave still writes the edit."""

from __future__ import annotations

from tests.web.editor_page import EditorPage

MARK_ELEMENTS = """() => { for (const el of document.querySelectorAll('.node')) el.keptMark = true; }"""
UNMARKED = """() => [...document.querySelectorAll('.node')].filter((el) => !el.keptMark)
    .map((el) => Number(el.dataset.nodeId))"""
SOCKET_TYPES = """(id) => [...document.querySelectorAll(`.node[data-node-id="${id}"] .socket`)]
    .map((s) => s.dataset.type)"""


def test_adding_and_deleting_a_node_rebuilds_that_node_alone(editor: EditorPage):
    editor.js(MARK_ELEMENTS)
    added = editor.js("() => sdgraph.addNode('KSampler', [900, 900]).id")
    assert editor.js(UNMARKED) == [added]
    editor.js(MARK_ELEMENTS)
    editor.js("(id) => { sdgraph.view.select([id]); sdgraph.deleteSelected(); }", added)
    assert editor.js(UNMARKED) == []
    assert editor.js("(id) => document.querySelector(`.node[data-node-id='${id}']`)", added) is None
    editor.js("() => sdgraph.undoStep()")
    assert editor.js(UNMARKED) == [added]


def test_deleting_a_reroutes_source_redraws_the_reroute_with_its_new_type(editor: EditorPage):
    # checkpoint (4) MODEL → reroute, feeding nothing else: deleting the checkpoint leaves it untyped
    reroute = editor.js("""() => {
        const reroute = sdgraph.addNode('Reroute', [600, 900]);
        sdgraph.graph.connect(4, 0, reroute.id, 0);
        return reroute.id;
    }""")
    assert editor.js(SOCKET_TYPES, reroute) == ["MODEL", "MODEL"]
    editor.js("() => { sdgraph.view.select([4]); sdgraph.deleteSelected(); }")
    assert editor.js(SOCKET_TYPES, reroute) == ["*", "*"]


def test_the_autosave_writes_an_edit_once_the_page_is_idle(editor: EditorPage):
    added = editor.js("() => sdgraph.addNode('KSampler', [900, 900]).id")
    editor.page.wait_for_function("""(id) => Object.keys(localStorage).some((key) =>
        key.startsWith('sdgraph.editor.session.')
        && JSON.parse(localStorage.getItem(key)).tabs.some((tab) => tab.workflow.nodes.some((n) => n.id === id)))""",
                                  arg=added, timeout=10_000)
