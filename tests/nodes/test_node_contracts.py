"""Every built-in node is written against the typed contract: `run(self, ctx: RunContext, ...)`.

The declaration check (engine/node_contract.py) already refuses a `run` that cannot take the
engine's call; this holds the built-in nodes to the annotation too, so a reader and mypy know what `ctx` is.
"""

from __future__ import annotations

import inspect

from engine.config import EngineConfig, build_registry
from engine.context import RunContext


def test_every_built_in_nodes_run_takes_a_run_context():
    registry = build_registry(EngineConfig())
    assert not registry.failures, registry.failures
    declarations = list(registry)
    assert len(declarations) > 200, "the built-in packages were loaded"
    untyped = []
    for declaration in declarations:
        params = list(inspect.signature(declaration.cls.run).parameters.values())
        ctx = params[1]  # after self: node_contract checks that it is there
        if ctx.name != "ctx" or ctx.annotation not in ("RunContext", RunContext):
            untyped.append(f"{declaration.class_type}: {declaration.cls.__qualname__}.run({ctx})")
    assert untyped == []
