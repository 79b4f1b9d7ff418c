"""The node boundary, checked at declaration: `run` and its hooks must accept what the engine passes.

The executor calls `run(ctx, **inputs)` with every declared input (omitted optional ones as
their widget default or None); `fingerprint(paths, **constants)` and
`validate_inputs(paths, **constants)` get only the constant (widget) values the workflow gives.
A signature that cannot take those calls fails here, at import, instead of in a prompt.
"""

from __future__ import annotations

import inspect
from typing import Callable

from engine.types import InputSpec

_HOOKS = ("fingerprint", "validate_inputs")


def check_node_contract(class_type: str, cls: type, inputs: dict[str, InputSpec]) -> None:
    """Raise TypeError when `run`, `fingerprint` or `validate_inputs` cannot take the engine's calls."""
    _check_method(class_type, cls, "run", "ctx", inputs, passed=set(inputs), always_passed=set(inputs))
    widgets = {name for name, spec in inputs.items() if spec.is_widget}
    # A hook sees only constants: link-only inputs never, a widget only when the workflow sets it
    # (a linked or omitted one is absent), so only required widgets may lack a default.
    required_widgets = {name for name in widgets if not inputs[name].optional}
    for hook in _HOOKS:
        if callable(getattr(cls, hook, None)):
            _check_method(class_type, cls, hook, "paths", inputs, passed=widgets, always_passed=required_widgets)


def _check_method(class_type: str, cls: type, method: str, first: str, inputs: dict[str, InputSpec],
                  passed: set[str], always_passed: set[str]) -> None:
    """`passed`: inputs the engine may pass by keyword; `always_passed`: those it passes on every call."""
    params = _parameters(cls, method)
    if params is None:
        return
    where = f"node {class_type!r}: {cls.__name__}.{method}"

    def fail(problem: str) -> None:
        raise TypeError(f"{where} {problem}")

    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        fail(f"must take {first!r} as its first parameter after self")
    rest = params[1:]
    starred = [p.name for p in rest if p.kind is p.VAR_POSITIONAL]
    if starred:
        fail(f"takes *{starred[0]}; inputs are passed by name, declare them as named parameters")
    positional_only = [p.name for p in rest if p.kind is p.POSITIONAL_ONLY]
    if positional_only:
        fail(f"has positional-only parameter(s) {_names(positional_only)}; inputs are passed by name")
    named = {p.name: p for p in rest if p.kind is not p.VAR_KEYWORD}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in rest)
    if not takes_any:
        missing = [name for name in inputs if name in passed and name not in named]
        if missing:
            fail(f"does not accept declared input(s) {_names(missing)}; add them as parameters or take **kwargs")
    undeclared = [name for name, p in named.items() if p.default is p.empty and name not in inputs]
    if undeclared:
        fail(f"requires parameter(s) {_names(undeclared)} that are not declared inputs, so the engine never "
             f"passes them; declare them or give them defaults")
    sometimes_absent = [name for name, p in named.items()
                        if p.default is p.empty and name in inputs and name not in always_passed]
    if sometimes_absent:
        fail(f"requires parameter(s) {_names(sometimes_absent)}, but it receives only the constant widget "
             f"values a workflow sets (never link-only inputs, optional ones only when set); give them defaults")


def _parameters(cls: type, method: str) -> list[inspect.Parameter] | None:
    """The method's parameters as called on an instance (self dropped), or None when not introspectable."""
    bound: Callable = getattr(cls, method)
    try:
        params = list(inspect.signature(bound).parameters.values())
    except (TypeError, ValueError):
        return None
    if inspect.isfunction(inspect.getattr_static(cls, method)) and params:
        params = params[1:]  # a plain function in the class body: its first parameter is self
    return params


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
