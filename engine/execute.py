"""The executor: runs a validated plan in dependency order, reusing cached node outputs.

Only what the outputs need and the cache cannot supply is executed. Every run reports, per
node, whether it ran, came from the cache or was not needed, and why it ran. One executor runs
one prompt at a time (the server's worker serialises them).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from engine.cache import OutputCache, Signature, explain_change
from engine.compile import CacheKeys, CompiledPrompt, models_of
from engine.context import Interrupted, InterruptHandle, RunContext
from engine.declare import NodeDeclaration, NodeResult
from engine.errors import ExecutionError
from engine.events import (
    EXECUTED,
    EXECUTING,
    EXECUTION_CACHED,
    EXECUTION_ERROR,
    EXECUTION_INTERRUPTED,
    EXECUTION_START,
    EXECUTION_SUCCESS,
    HISTORY_EVENTS,
    Listener,
    RunStatus,
)
from engine.paths import Paths
from engine.provenance import upstream_records
from engine.registry import NodeRegistry
from engine.validate import SETTING_LIMITS, Limits, ValidationResult, validate
from engine.workflow import Workflow

# What happened to one node in a run.
NodeStatus = Literal["ran", "cached", "not_needed", "failed", "not_reached"]


class ValidationFailed(Exception):
    """The workflow did not validate; `result` carries ComfyUI's `error` and `node_errors`."""

    def __init__(self, result: ValidationResult) -> None:
        super().__init__(result.error.get("details") if result.error else "invalid workflow")
        self.result = result


class NodeContractError(RuntimeError):
    """A node returned something other than what its declaration promises."""


@dataclass
class NodeReport:
    node_id: str
    class_type: str
    status: NodeStatus
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RunResult:
    """How one run went: its status, the UI outputs, a report per node and the history messages."""

    prompt_id: str
    status: RunStatus
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: dict[str, NodeReport] = field(default_factory=dict)
    messages: list[list[Any]] = field(default_factory=list)
    error: ExecutionError | None = None
    keys: CacheKeys | None = None

    def nodes_with(self, status: NodeStatus) -> list[str]:
        return [r.node_id for r in self.report.values() if r.status == status]

    @property
    def ran(self) -> list[str]:
        return self.nodes_with("ran")

    @property
    def cached(self) -> list[str]:
        return self.nodes_with("cached")


def _now_ms() -> int:
    return int(time.time() * 1000)


class Executor:
    """Validates and executes workflows against one registry, folder set and output cache."""

    def __init__(self, registry: NodeRegistry, paths: Paths | None = None, cache: OutputCache | None = None,
                 limits: Limits = Limits(), settings: dict[str, Any] | None = None) -> None:
        self.registry = registry
        self.paths = paths or Paths()
        self.cache = cache if cache is not None else OutputCache()
        self.limits = limits
        self.settings = dict(settings or {})

    def validate(self, workflow: Workflow, targets: Iterable[str] | None = None,
                 extra_data: dict[str, Any] | None = None) -> ValidationResult:
        return validate(workflow, self.registry, self.paths, targets, self.limits, self.run_settings(extra_data))

    def compile(self, workflow: Workflow, targets: Iterable[str] | None = None,
                extra_data: dict[str, Any] | None = None) -> CompiledPrompt:
        """Validate once into a prompt ready to dispatch and run; raises ValidationFailed."""
        settings = self.run_settings(extra_data)
        result = validate(workflow, self.registry, self.paths, targets, self.limits, settings)
        if not result.ok or result.plan is None:
            raise ValidationFailed(result)
        return CompiledPrompt(result.plan, settings, models_of(result.plan))

    def execute(self, workflow: Workflow, *, prompt_id: str | None = None, listener: Listener | None = None,
                interrupt: InterruptHandle | None = None, extra_data: dict[str, Any] | None = None,
                targets: Iterable[str] | None = None) -> RunResult:
        """Compile then run; raises ValidationFailed for an invalid workflow."""
        return self.run(self.compile(workflow, targets, extra_data), prompt_id=prompt_id, listener=listener,
                        interrupt=interrupt, extra_data=extra_data)

    def run(self, compiled: CompiledPrompt, *, prompt_id: str | None = None, listener: Listener | None = None,
            interrupt: InterruptHandle | None = None, extra_data: dict[str, Any] | None = None) -> RunResult:
        """Run a compiled prompt, reusing what the cache holds; never raises for a node's failure."""
        compiled.bind(self.registry)
        return _Run(self, compiled, prompt_id or str(uuid.uuid4()), listener, interrupt or InterruptHandle(),
                    extra_data or {}).go()

    def run_settings(self, extra_data: dict[str, Any] | None) -> dict[str, Any]:
        """The executor's settings with a workflow's own overrides (`extra_data["settings"]`) on top.

        Limits (`max_*`) are the server's: a workflow may lower one, never raise it, and a limit the
        server does not know is ignored (it could only be a way around one it does).
        """
        overrides = (extra_data or {}).get("settings")
        if not isinstance(overrides, dict):
            return self.settings
        settings = {**self.settings}
        for name, value in overrides.items():
            if not str(name).startswith(LIMIT_PREFIX):
                settings[name] = value
                continue
            ceiling = self.settings.get(name, SETTING_LIMITS.get(name))
            if ceiling is not None and _is_number(value) and value < ceiling:
                settings[name] = value
        return settings


LIMIT_PREFIX = "max_"  # run settings named so are caps (engine.validate.SETTING_LIMITS)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _check_storable_ui(decl: NodeDeclaration, ui: Any) -> None:
    """A UI result goes to the history (stored as JSON) and to clients: refuse, as this node's error,
    what JSON cannot carry (a tensor, a set, NaN), before it is cached or sent."""
    if not isinstance(ui, dict):
        raise NodeContractError(f"{decl.class_type}.run returned a UI result of type {type(ui).__name__}; "
                                f"expected a dict")
    try:
        json.dumps(ui, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise NodeContractError(f"{decl.class_type}.run returned a UI result that cannot be stored as JSON: "
                                f"{exc}") from None


class _Run:
    """The state of one execution of one plan."""

    def __init__(self, executor: Executor, compiled: CompiledPrompt, prompt_id: str, listener: Listener | None,
                 interrupt: InterruptHandle, extra_data: dict[str, Any]) -> None:
        self.executor = executor
        self.cache = executor.cache
        self.compiled = compiled
        self.plan = compiled.plan
        self.prompt_id = prompt_id
        self.listener = listener
        self.interrupt = interrupt
        self.extra_data = extra_data
        self.settings = compiled.settings
        self.result = RunResult(prompt_id=prompt_id, status="success")
        self.values: dict[str, tuple] = {}
        self.executed: list[str] = []
        self.ran_by_key: dict[str, str] = {}
        self._prompt_json: dict[str, Any] | None = None

    def emit(self, event: str, data: dict[str, Any]) -> None:
        if event in HISTORY_EVENTS:
            self.result.messages.append([event, data])
        if self.listener is not None:
            self.listener(event, data)

    @property
    def prompt_json(self) -> dict[str, Any]:
        if self._prompt_json is None:
            self._prompt_json = self.plan.workflow.to_api()
        return self._prompt_json

    def nodes_to_run(self, cached: set[str]) -> set[str]:
        """The needed nodes whose outputs the cache cannot supply, walking up from the outputs."""
        to_run: set[str] = set()
        stack = [n for n in self.plan.outputs if n not in cached]
        while stack:
            node_id = stack.pop()
            if node_id in to_run:
                continue
            to_run.add(node_id)
            stack.extend(link.node_id for link in self.plan.links[node_id].values()
                         if link.node_id not in cached and link.node_id not in to_run)
        return to_run

    def go(self) -> RunResult:
        plan = self.plan
        self.result.keys = keys = self.compiled.keys(self.executor.paths)
        signatures, volatile = keys.signatures, keys.volatile
        cached: set[str] = set()
        for node_id in plan.order:
            entry = None if node_id in volatile else self.cache.get(signatures[node_id].key)
            if entry is not None:
                cached.add(node_id)
                self.values[node_id] = entry.outputs
                if entry.ui is not None and plan.declarations[node_id].output_node:
                    self.result.outputs[node_id] = entry.ui
        to_run = self.nodes_to_run(cached)
        for node_id in plan.order:
            decl = plan.declarations[node_id]
            previous = self.cache.remember(node_id, signatures[node_id])
            status: NodeStatus
            if node_id in cached:
                status, reason = "cached", "same class, inputs and upstream results as a cached run"
            elif node_id not in to_run:
                status, reason = "not_needed", "every node that reads it was cached"
            else:
                status, reason = "not_reached", self.why(node_id, decl, previous, signatures[node_id], volatile)
            self.result.report[node_id] = NodeReport(node_id, decl.class_type, status, reason)

        self.emit(EXECUTION_START, {"prompt_id": self.prompt_id, "timestamp": _now_ms()})
        self.emit(EXECUTION_CACHED, {"nodes": [n for n in plan.order if n in cached], "prompt_id": self.prompt_id,
                                     "timestamp": _now_ms()})
        for node_id in plan.order:
            if node_id in cached and node_id in self.result.outputs:
                self.emit(EXECUTED, {"node": node_id, "display_node": node_id,
                                     "output": self.result.outputs[node_id], "prompt_id": self.prompt_id})
        current = None
        try:
            for node_id in plan.order:
                if node_id not in to_run:
                    continue
                current = node_id
                self.interrupt.check()
                if not self.reuse_identical(node_id, signatures[node_id], node_id in volatile):
                    self.run_node(node_id, signatures[node_id], node_id in volatile)
        except Interrupted:
            self.fail_node(current, "interrupted")
            self.result.status = "interrupted"
            self.emit(EXECUTION_INTERRUPTED, {"prompt_id": self.prompt_id, "node_id": current,
                                              "node_type": plan.declarations[current].class_type if current else None,
                                              "executed": list(self.executed), "timestamp": _now_ms()})
            return self.result
        except Exception as exc:
            self.fail_node(current, f"{type(exc).__name__}: {exc}")
            self.result.status = "error"
            self.result.error = self.error_event(current, exc)
            self.emit(EXECUTION_ERROR, self.result.error.data())
            return self.result
        self.emit(EXECUTION_SUCCESS, {"prompt_id": self.prompt_id, "timestamp": _now_ms()})
        return self.result

    def why(self, node_id: str, decl: NodeDeclaration, previous: Signature | None, signature: Signature,
            volatile: frozenset[str]) -> str:
        if decl.always_rerun:
            return "declared to re-run on every execution"
        if node_id in volatile and signature.external and signature.external.startswith("unavailable:"):
            return f"its external state could not be read ({signature.external[13:]})"
        if node_id in volatile:
            upstream = sorted({link.node_id for link in self.plan.links[node_id].values() if link.node_id in volatile})
            return f"upstream node(s) {', '.join(upstream)} re-run on every execution"
        return explain_change(previous, signature)

    def fail_node(self, node_id: str | None, reason: str) -> None:
        if node_id is not None:
            report = self.result.report[node_id]
            report.status, report.reason = "failed", f"{reason} (it had to run: {report.reason})"

    def inputs_for(self, node_id: str, decl: NodeDeclaration) -> dict[str, Any]:
        """Keyword arguments for `run`: constants, upstream values, defaults for omitted optionals."""
        kwargs: dict[str, Any] = {}
        for name, spec in decl.optional.items():
            kwargs[name] = getattr(spec, "default", None) if spec.is_widget else None
        kwargs.update(self.plan.constants[node_id])
        for name, link in self.plan.links[node_id].items():
            kwargs[name] = self.values[link.node_id][link.slot]
        return kwargs

    def reuse_identical(self, node_id: str, signature: Signature, volatile: bool) -> bool:
        """Take the result of an identical node that ran earlier in this run (shared subgraphs)."""
        twin = self.ran_by_key.get(signature.key)
        if volatile or twin is None:
            return False
        self.values[node_id] = self.values[twin]
        report = self.result.report[node_id]
        report.status, report.reason = "cached", f"identical to node {twin}, which ran earlier in this run"
        ui = self.result.outputs.get(twin)
        if ui is not None:
            self.result.outputs[node_id] = ui
        return True

    def run_node(self, node_id: str, signature: Signature, volatile: bool) -> None:
        decl = self.plan.declarations[node_id]
        self.emit(EXECUTING, {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id})
        ctx = RunContext(node_id=node_id, prompt_id=self.prompt_id, paths=self.executor.paths,
                         interrupt=self.interrupt, emit=self.emit,
                         prompt=self.prompt_json if "prompt" in decl.hidden else {},
                         extra_pnginfo=self.extra_data.get("extra_pnginfo"),
                         settings=self.settings,
                         upstream=lambda: upstream_records(self.plan, node_id, self.values))
        started = time.perf_counter()
        returned = decl.cls().run(ctx, **self.inputs_for(node_id, decl))
        outputs, ui = self.normalise(decl, returned)
        report = self.result.report[node_id]
        report.status, report.seconds = "ran", time.perf_counter() - started
        self.values[node_id] = outputs
        self.executed.append(node_id)
        self.ran_by_key[signature.key] = node_id
        if not volatile:
            self.cache.put(signature.key, outputs, ui)
        if ui is not None:
            self.result.outputs[node_id] = ui
            self.emit(EXECUTED, {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.prompt_id})

    @staticmethod
    def normalise(decl: NodeDeclaration, returned: Any) -> tuple[tuple, dict[str, Any] | None]:
        if isinstance(returned, NodeResult):
            outputs, ui = tuple(returned.outputs), returned.ui
        elif returned is None:
            outputs, ui = (), None
        elif isinstance(returned, (tuple, list)):
            outputs, ui = tuple(returned), None
        else:
            raise NodeContractError(f"{decl.class_type}.run returned {type(returned).__name__}; "
                                    f"expected a tuple of outputs or a NodeResult")
        if len(outputs) != len(decl.outputs):
            raise NodeContractError(f"{decl.class_type}.run returned {len(outputs)} value(s) but declares "
                                    f"{len(decl.outputs)} output(s)")
        if ui is not None:
            _check_storable_ui(decl, ui)
        return outputs, ui

    def error_event(self, node_id: str | None, exc: Exception) -> ExecutionError:
        decl = self.plan.declarations.get(node_id) if node_id else None
        current_inputs = {}
        if node_id is not None:
            current_inputs = {k: repr(v)[:200] for k, v in self.plan.constants[node_id].items()}
        return ExecutionError.from_exception(self.prompt_id, exc, node_id=node_id,
                                             node_type=decl.class_type if decl else None,
                                             executed=list(self.executed), current_inputs=current_inputs)
