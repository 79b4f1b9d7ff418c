"""The set of node types one engine instance knows, loaded from modules and an extension folder.

No global registry: the CLI and the server each build one. Built-in node modules are named by
the caller (the engine never imports `nodes` itself); third-party node packs are Python files or
packages in an extension folder, and one that fails to import is reported and skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator

from engine.declare import NodeDeclaration, declaration_of


@dataclass(frozen=True)
class ExtensionFailure:
    """A node pack that could not be loaded, and why."""

    name: str
    error: str


class NodeRegistry:
    def __init__(self, classes: Iterable[type] = ()) -> None:
        self._declarations: dict[str, NodeDeclaration] = {}
        self._legacy_names: dict[str, str] = {}   # an old saved class name → today's
        self.failures: list[ExtensionFailure] = []
        # Say why a class name is missing (e.g. "a pack this engine does not build"); None: no idea.
        self.missing_explainers: list[Callable[[str], str | None]] = []
        for cls in classes:
            self.register(cls)

    def register(self, cls: type) -> NodeDeclaration:
        decl = declaration_of(cls)
        if decl is None:
            raise TypeError(f"{cls!r} is not a declared node (missing @node)")
        self._declarations[decl.class_type] = decl
        for name in decl.legacy_names:
            self._legacy_names[name] = decl.class_type
        return decl

    def register_module(self, module: ModuleType) -> list[str]:
        """Register every node class defined in `module` or its submodules (not mere imports)."""
        added = []
        for _, obj in inspect.getmembers(module, inspect.isclass):
            decl = declaration_of(obj)
            if decl is not None and (obj.__module__ == module.__name__
                                     or obj.__module__.startswith(module.__name__ + ".")):
                self.register(obj)
                added.append(decl.class_type)
        explain = getattr(module, "explain_missing_node", None)
        if callable(explain) and getattr(explain, "__module__", None) == module.__name__ \
                and explain not in self.missing_explainers:
            self.missing_explainers.append(explain)
        return added

    def explain_missing(self, class_type: str) -> str | None:
        """Why `class_type` is not available, from the loaded modules' `explain_missing_node`, if any knows."""
        for explain in self.missing_explainers:
            reason = explain(class_type)
            if reason:
                return reason
        return None

    def load_package(self, package: str) -> list[str]:
        """Import `package` and each of its submodules, registering their nodes.

        Subpackages that say `NODE_PACKAGE = True` in their `__init__` are loaded the same way;
        others hold helpers (model code) and are imported only by the modules that use them."""
        root = importlib.import_module(package)
        added = self.register_module(root)
        folder = Path(str(root.__file__)).parent
        for path in sorted(folder.glob("*.py")):
            if path.stem != "__init__" and not path.stem.startswith("_"):
                added += self.register_module(importlib.import_module(f"{package}.{path.stem}"))
        for sub in sorted(p for p in folder.iterdir() if (p / "__init__.py").is_file()):
            if sub.name.startswith(("_", ".")):
                continue
            if getattr(importlib.import_module(f"{package}.{sub.name}"), "NODE_PACKAGE", False):
                added += self.load_package(f"{package}.{sub.name}")
        return added

    def load_extensions(self, folder: Path) -> list[str]:
        """Load each `*.py` file and package in `folder`; failures go to `self.failures`."""
        added: list[str] = []
        if not folder.is_dir():
            return added
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith((".", "_")):
                continue
            if entry.is_dir() and (entry / "__init__.py").exists():
                target = entry / "__init__.py"
            elif entry.suffix == ".py":
                target = entry
            else:
                continue
            module_name = f"engine_extension_{entry.stem}"
            try:
                spec = importlib.util.spec_from_file_location(
                    module_name, target, submodule_search_locations=[str(entry)] if entry.is_dir() else None)
                if spec is None or spec.loader is None:
                    raise ImportError(f"{target} is not a Python module")
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
                added += self.register_module(module)
            except BaseException as exc:  # a broken pack must never stop start-up
                if isinstance(exc, KeyboardInterrupt):
                    raise
                sys.modules.pop(module_name, None)
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self.failures.append(ExtensionFailure(entry.name, detail))
        return added

    def get(self, class_type: str) -> NodeDeclaration | None:
        """The node type named `class_type`, or saved under that older name."""
        decl = self._declarations.get(class_type)
        if decl is None and class_type in self._legacy_names:
            decl = self._declarations.get(self._legacy_names[class_type])
        return decl

    def __contains__(self, class_type: object) -> bool:
        return isinstance(class_type, str) and self.get(class_type) is not None

    def __iter__(self) -> Iterator[NodeDeclaration]:
        return iter(self._declarations.values())

    def __len__(self) -> int:
        return len(self._declarations)

    def object_info(self, paths: Any = None) -> dict[str, Any]:
        """Every node in ComfyUI's `/object_info` shape, keyed by class name."""
        return {decl.class_type: decl.object_info(paths) for decl in self}
