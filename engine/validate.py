"""Whole-graph validation before anything runs: every error at once, in ComfyUI's structure.

`validate` checks node types, links, types, constants (coerced as users expect, `"20"` → 20),
ranges, choices, cycles and hard limits, over the nodes the outputs (or the requested partial
targets) actually need. A valid graph comes back as a `Plan` the executor runs as is.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable

import networkx as nx

from engine.declare import NodeDeclaration
from engine.errors import input_error, prompt_error
from engine.paths import UnsafePathError, posix_model_name
from engine.registry import NodeRegistry
from engine.types import Choice, CoercionError, InputSpec
from engine.workflow import LinkRef, MalformedLink, Workflow

_MAX_LISTED_CHOICES = 20
# Run settings that bound what one prompt may allocate, with the server's default for each. A
# request's `extra_data.settings` may lower them, never raise them (Executor.run_settings).
SETTING_LIMITS: dict[str, int] = {"max_latent_pixels": 4096 * 4096 * 4}


@dataclass(frozen=True)
class Limits:
    """Hard bounds that keep a hostile graph from exhausting the machine."""

    max_nodes: int = 100_000
    max_inputs_per_node: int = 1_000
    max_string_length: int = 1_000_000
    max_value_depth: int = 32


@dataclass
class Plan:
    """A validated graph, ready to execute: needed nodes in dependency order with coerced inputs."""

    workflow: Workflow
    outputs: list[str]
    order: list[str]
    declarations: dict[str, NodeDeclaration]
    constants: dict[str, dict[str, Any]]
    links: dict[str, dict[str, LinkRef]]


@dataclass
class ValidationResult:
    error: dict[str, Any] | None = None
    node_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    plan: Plan | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.node_errors

    def response(self) -> dict[str, Any]:
        """The body ComfyUI answers a rejected `POST /prompt` with."""
        return {"error": self.error, "node_errors": self.node_errors}


def _value_too_big(value: Any, limits: Limits) -> str | None:
    """Why a literal value breaks the limits (too deep or too long a string), or None."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limits.max_value_depth:
            return f"nested deeper than {limits.max_value_depth} levels"
        if isinstance(item, str) and len(item) > limits.max_string_length:
            return f"a string of {len(item)} characters exceeds the limit of {limits.max_string_length}"
        if isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
    return None


class _Validator:
    def __init__(self, workflow: Workflow, registry: NodeRegistry, paths: Any, limits: Limits,
                 settings: dict[str, Any] | None = None) -> None:
        self.workflow = workflow
        self.registry = registry
        self.paths = paths
        self.limits = limits
        self.settings = settings
        self.node_errors: dict[str, list[dict[str, Any]]] = {}
        self.constants: dict[str, dict[str, Any]] = {}
        self.links: dict[str, dict[str, LinkRef]] = {}
        self._choices: dict[int, list[str]] = {}

    def fail(self, node_id: str, error: dict[str, Any]) -> None:
        self.node_errors.setdefault(node_id, []).append(error)

    def choices(self, spec: Choice) -> list[str]:
        key = id(spec)
        if key not in self._choices:
            self._choices[key] = spec.available(self.paths)
        return self._choices[key]

    def check_link(self, node_id: str, name: str, spec: InputSpec, link: LinkRef) -> None:
        source = self.workflow.nodes.get(link.node_id)
        if source is None:
            self.fail(node_id, input_error(
                "bad_linked_input", f"Linked node {link.node_id!r} does not exist", name,
                f"{name}: link to missing node {link.node_id!r}", received_value=link.to_json()))
            return
        source_decl = self.registry.get(source.class_type)
        if source_decl is None:
            return  # reported as missing_node_type on the source node
        if not 0 <= link.slot < len(source_decl.outputs):
            self.fail(node_id, input_error(
                "bad_linked_input", f"Output slot {link.slot} does not exist on node {link.node_id!r}", name,
                f"{name}: {source.class_type} has {len(source_decl.outputs)} output(s)",
                received_value=link.to_json()))
            return
        received = source_decl.outputs[link.slot].type
        if not spec.accepts_link_type(received):
            self.fail(node_id, input_error(
                "return_type_mismatch", "Return type mismatch between linked nodes", name,
                f"{name}, received_type({received}) mismatch input_type({spec.type})",
                received_type=received, input_type=spec.type, linked_node=link.to_json()))
            return
        self.links[node_id][name] = link

    def check_constant(self, node_id: str, name: str, spec: InputSpec, value: Any) -> None:
        if not spec.is_widget:
            self.fail(node_id, input_error(
                "invalid_input_type", f"Input expects a link to a {spec.type} output, not a constant", name,
                f"{name}: received {value!r}", received_value=value, input_type=spec.type))
            return
        problem = _value_too_big(value, self.limits)
        if problem:
            self.fail(node_id, input_error("value_too_large", f"Value too large: {problem}", name, name))
            return
        try:
            coerced = spec.coerce(value)
        except CoercionError as exc:
            self.fail(node_id, input_error(
                "invalid_input_type", f"Failed to convert an input value to a {spec.type} value", name,
                f"{name}, {value!r}, {exc}", received_value=value, input_type=spec.type))
            return
        for error_type, message in spec.range_errors(coerced):
            self.fail(node_id, input_error(error_type, message, name, f"{name}", received_value=coerced,
                                           input_config=spec.options()))
            return
        if isinstance(spec, Choice):
            available = self.choices(spec)
            if coerced not in available and spec.loads is not None and "\\" in coerced:
                try:   # a workflow made on Windows names files in subfolders with backslashes
                    posix = posix_model_name(coerced)
                except UnsafePathError as exc:
                    self.fail(node_id, input_error("value_not_in_list", "Unsafe model file name", name,
                                                   f"{name}: {exc}", received_value=coerced))
                    return
                coerced = posix if posix in available else coerced
            if coerced not in available:
                shown = available[:_MAX_LISTED_CHOICES] + (["..."] if len(available) > _MAX_LISTED_CHOICES else [])
                self.fail(node_id, input_error(
                    "value_not_in_list", "Value not in list", name, f"{name}: {coerced!r} not in {shown}",
                    received_value=coerced, input_config={"choices": shown}))
                return
        self.constants[node_id][name] = coerced

    def check_node(self, node_id: str, decl: NodeDeclaration) -> None:
        spec_node = self.workflow.nodes[node_id]
        self.constants[node_id] = {}
        self.links[node_id] = {}
        if len(spec_node.inputs) > self.limits.max_inputs_per_node:
            self.fail(node_id, input_error("too_many_inputs", "Node has too many inputs", None,
                                           f"{len(spec_node.inputs)} > {self.limits.max_inputs_per_node}"))
            return
        errors_before = len(self.node_errors.get(node_id, []))
        for name, spec in decl.inputs.items():
            if name not in spec_node.inputs:
                if not spec.optional:
                    self.fail(node_id, input_error("required_input_missing", "Required input is missing", name))
                continue
            value = spec_node.inputs[name]
            if isinstance(value, MalformedLink):
                self.fail(node_id, input_error(
                    "bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    name, f"{name}: {value.raw!r}", received_value=value.raw))
            elif isinstance(value, LinkRef):
                self.check_link(node_id, name, spec, value)
            else:
                self.check_constant(node_id, name, spec, value)
        if len(self.node_errors.get(node_id, [])) == errors_before and decl.has_custom_validation:
            self.check_custom(node_id, decl)

    def check_custom(self, node_id: str, decl: NodeDeclaration) -> None:
        try:
            check = decl.cls().validate_inputs
            extra = {"settings": self.settings} if _takes_settings(check) else {}
            message = check(self.paths, **self.constants[node_id], **extra)
        except Exception as exc:  # a node's own check must not take validation down
            message = f"validation raised {type(exc).__name__}: {exc}"
        if message and message is not True:   # True passes, as ComfyUI's VALIDATE_INPUTS returns it
            self.fail(node_id, input_error("custom_validation_failed", str(message), None, str(message)))


def _takes_settings(check: Callable[..., Any]) -> bool:
    """Whether a node's `validate_inputs` asks for the run settings (its caps) by a `settings` parameter."""
    return _declares_settings(getattr(check, "__func__", check))


@lru_cache(maxsize=None)
def _declares_settings(function: Callable[..., Any]) -> bool:
    try:
        return "settings" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _predecessor_map(workflow: Workflow) -> dict[str, list[str]]:
    """For each node, the existing nodes its links read from (computed once per validation)."""
    nodes = workflow.nodes
    return {node_id: [v.node_id for v in spec.inputs.values() if isinstance(v, LinkRef) and v.node_id in nodes]
            for node_id, spec in nodes.items()}


def _ancestors_and_self(predecessors: dict[str, list[str]], roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(p for p in predecessors[current] if p not in seen)
    return seen


def _output_nodes(workflow: Workflow, registry: NodeRegistry) -> list[str]:
    outputs = []
    for node_id, spec in workflow.nodes.items():
        decl = registry.get(spec.class_type)
        if decl is not None and decl.output_node:
            outputs.append(node_id)
    return outputs


def validate(workflow: Workflow, registry: NodeRegistry, paths: Any = None,
             targets: Iterable[str] | None = None, limits: Limits = Limits(),
             settings: dict[str, Any] | None = None) -> ValidationResult:
    """Validate `workflow`; with `targets`, only what those nodes need (partial execution).

    `settings` are the run's settings, for the nodes whose own checks apply configured caps."""
    if len(workflow.nodes) > limits.max_nodes:
        return ValidationResult(error=prompt_error(
            "graph_too_large", f"{len(workflow.nodes)} nodes exceed the limit of {limits.max_nodes}"))
    validator = _Validator(workflow, registry, paths, limits, settings)

    missing_types = []
    for node_id, spec in workflow.nodes.items():
        if spec.class_type not in registry:
            missing_types.append(node_id)
            reason = registry.explain_missing(spec.class_type)   # e.g. a known pack we do not build
            validator.fail(node_id, input_error(
                "missing_node_type", reason or f"Node type {spec.class_type!r} not found", None,
                f"Node {node_id!r} has class_type {spec.class_type!r}, which no loaded node pack declares",
                class_type=spec.class_type, node_title=spec.title))

    if targets is not None:
        outputs = [str(t) for t in targets]
        unknown = [t for t in outputs if t not in workflow.nodes]
        if unknown:
            return ValidationResult(error=prompt_error("invalid_prompt", f"partial execution targets "
                                                       f"{unknown} are not nodes of the workflow"))
    else:
        outputs = _output_nodes(workflow, registry)
    if not outputs:
        return ValidationResult(error=prompt_error(
            "prompt_no_outputs", "The workflow has no output node (e.g. SaveImage) to execute"),
            node_errors=_entries(validator, workflow, {}, []))

    predecessors = _predecessor_map(workflow)
    needed = _ancestors_and_self(predecessors, outputs)
    graph = nx.DiGraph()
    graph.add_nodes_from(node_id for node_id in workflow.nodes if node_id in needed)
    graph.add_edges_from((p, n) for n in graph.nodes for p in predecessors[n])

    try:
        order = list(nx.topological_sort(graph))
    except nx.NetworkXUnfeasible:  # a cycle: name every node on one, then report with the rest
        order = []
        for component in nx.strongly_connected_components(graph):
            if len(component) > 1 or any(graph.has_edge(n, n) for n in component):
                cycle = sorted(component, key=_id_sort_key)
                for node_id in cycle:
                    validator.fail(node_id, input_error(
                        "dependency_cycle", "Dependency cycle detected", None,
                        f"nodes {cycle} depend on each other", cycle=cycle))

    declarations: dict[str, NodeDeclaration] = {}
    for node_id in graph.nodes:
        decl = registry.get(workflow.nodes[node_id].class_type)
        if decl is not None:
            declarations[node_id] = decl
            validator.check_node(node_id, decl)

    if validator.node_errors:
        error_type = "missing_node_type" if missing_types else "prompt_outputs_failed_validation"
        first = missing_types[0] if missing_types else None
        reason = registry.explain_missing(workflow.nodes[first].class_type) if first else None
        details = (f"Node {first!r}: {reason}" if reason
                   else f"Node {first!r}: type {workflow.nodes[first].class_type!r} is not installed" if first
                   else f"{len(validator.node_errors)} node(s) have invalid inputs")
        return ValidationResult(error=prompt_error(error_type, details),
                                node_errors=_entries(validator, workflow, predecessors, outputs))

    plan = Plan(workflow=workflow, outputs=outputs, order=order,
                declarations=declarations, constants=validator.constants, links=validator.links)
    return ValidationResult(plan=plan)


def recheck(plan: Plan, paths: Any = None, limits: Limits = Limits(),
            settings: dict[str, Any] | None = None) -> ValidationResult:
    """Re-run, for a plan validated earlier, the checks that depend on files (nodes' own checks).

    A queued prompt was valid when it was compiled; only the world outside the graph can have
    changed since, so this is all a worker checks again before running it.
    """
    validator = _Validator(plan.workflow, NodeRegistry(), paths, limits, settings)
    validator.constants = plan.constants
    for node_id in plan.order:
        if plan.declarations[node_id].has_custom_validation:
            validator.check_custom(node_id, plan.declarations[node_id])
    if not validator.node_errors:
        return ValidationResult(plan=plan)
    return ValidationResult(error=prompt_error("prompt_outputs_failed_validation",
                                               f"{len(validator.node_errors)} node(s) have invalid inputs"),
                            node_errors=_entries(validator, plan.workflow, _predecessor_map(plan.workflow),
                                                 plan.outputs))


def _entries(validator: _Validator, workflow: Workflow, predecessors: dict[str, list[str]],
             outputs: list[str]) -> dict[str, dict[str, Any]]:
    """`node_errors` entries with the outputs that each failing node would have fed."""
    reach = {out: _ancestors_and_self(predecessors, [out]) for out in outputs}
    entries = {}
    for node_id in sorted(validator.node_errors, key=_id_sort_key):
        entries[node_id] = {
            "errors": validator.node_errors[node_id],
            "dependent_outputs": [out for out in outputs if node_id in reach[out]],
            "class_type": workflow.nodes[node_id].class_type,
        }
    return entries


def _id_sort_key(node_id: str) -> tuple:
    """Int-like ids in numeric order, then the rest alphabetically: stable, readable reports."""
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)
