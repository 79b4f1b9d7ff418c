"""Layers point downwards (server.py and api/ → engine/ ← nodes/) and have no import cycles, nodes/ included.

Read from the source, imports inside functions included: a cycle or an upward import hidden in a
function still ties the layers together, it only fails later.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"torch", "diffusers", "transformers"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved, `from a import b` also as `a.b`."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}".rstrip(".")
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def import_graph(*folders: str) -> nx.DiGraph:
    """Edges between the first-party modules of `folders` (and server.py)."""
    files = [p for folder in folders for p in (ROOT / folder).rglob("*.py")] + [ROOT / "server.py"]
    modules = {module_name(p): p for p in files}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for target in imported(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):  # a package's own __init__
                graph.add_edge(name, target)
    return graph


def test_the_engine_imports_neither_the_server_nor_the_nodes_nor_torch():
    upward, heavy = [], []
    for path in (ROOT / "engine").rglob("*.py"):
        for name in imported(path):
            top = name.split(".")[0]
            if top in {"api", "nodes", "server"}:
                upward.append(f"{path.relative_to(ROOT)}: {name}")
            if top in HEAVY:
                heavy.append(f"{path.relative_to(ROOT)}: {name}")
    assert upward == [] and heavy == []


def test_engine_and_api_modules_import_each_other_without_cycles():
    graph = import_graph("engine", "api")
    assert graph.has_edge("api.state", "api.websocket") and graph.has_edge("api.routes_ws", "api.state")
    assert [sorted(group) for group in nx.strongly_connected_components(graph) if len(group) > 1] == []


def test_node_modules_import_each_other_without_cycles():
    graph = import_graph("engine", "api", "nodes")
    assert graph.has_edge("nodes.models.controlnet_loading", "nodes.models.control_lora")
    assert graph.has_edge("nodes.models.control_lora", "nodes.models.controlnet_keys")
    assert [sorted(group) for group in nx.strongly_connected_components(graph) if len(group) > 1] == []
