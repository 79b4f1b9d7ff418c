"""A prompt compiled once: its validated plan, the models it loads, and its cache keys.

`POST /prompt` and the CLI compile a prompt (validation happens there, once). The dispatcher
reads the compiled prompt's models for worker affinity and its cache keys for cache coverage;
the worker runs its plan. Cache keys need each node's fingerprint (a file's stamp, say), which
can change while a prompt waits in the queue, so they are computed once, when first asked for:
by the dispatcher as it chooses a worker, or by the worker as the run starts.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from engine.cache import Signature, canonical
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.validate import Plan


@dataclass(frozen=True)
class ModelUse:
    """One model file a node of the prompt loads (an input declared with `loads`)."""

    node_id: str
    kind: str
    name: str

    @property
    def key(self) -> str:
        """`kind/name`: how workers list what they hold."""
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class CacheKeys:
    """Every needed node's signature, and the volatile nodes (re-run each time, never cached)."""

    signatures: dict[str, Signature]
    volatile: frozenset[str]

    def reusable(self) -> set[str]:
        """The cache keys a worker's cache may already hold for this prompt."""
        return {sig.key for node_id, sig in self.signatures.items() if node_id not in self.volatile}


@dataclass
class CompiledPrompt:
    """A validated prompt, ready to dispatch and run; built by `Executor.compile`.

    Picklable for remote workers: the node declarations (classes) are left behind and looked up
    again in the worker's own registry (`bind`).
    """

    plan: Plan
    settings: dict[str, Any]
    models: tuple[ModelUse, ...] = ()
    _keys: CacheKeys | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def model_keys(self) -> frozenset[str]:
        return frozenset(model.key for model in self.models)

    def keys(self, paths: Paths) -> CacheKeys:
        """The cache keys, computed on the first call (reading each node's fingerprint once)."""
        with self._lock:
            if self._keys is None:
                self._keys = sign(self.plan, paths, self.settings)
            return self._keys

    def bind(self, registry: NodeRegistry) -> None:
        """Attach the declarations of `registry` after unpickling; KeyError names a missing type."""
        if self.plan.declarations:
            return
        declarations = {}
        for node_id in self.plan.order:
            class_type = self.plan.workflow.nodes[node_id].class_type
            decl = registry.get(class_type)
            if decl is None:
                raise KeyError(f"node {node_id}: type {class_type!r} is not installed on this worker")
            declarations[node_id] = decl
        self.plan.declarations = declarations

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["plan"] = Plan(**{**vars(self.plan), "declarations": {}})
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())


def models_of(plan: Plan) -> tuple[ModelUse, ...]:
    """The model files the plan's nodes load, read from their declarations' `loads` inputs."""
    uses = []
    for node_id in plan.order:
        for name, kind in plan.declarations[node_id].model_inputs.items():
            value = plan.constants[node_id].get(name)
            if isinstance(value, str):
                uses.append(ModelUse(node_id, kind, value))
    return tuple(uses)


def sign(plan: Plan, paths: Paths, settings: dict[str, Any]) -> CacheKeys:
    """Each needed node's signature: class, version, constants, settings it uses, fingerprint, upstream keys."""
    signatures: dict[str, Signature] = {}
    volatile: set[str] = set()
    for node_id in plan.order:
        decl = plan.declarations[node_id]
        links = plan.links[node_id]
        external = None
        if decl.always_rerun:
            external = uuid.uuid4().hex
            volatile.add(node_id)
        elif decl.has_fingerprint:
            try:
                external = str(decl.cls().fingerprint(paths, **plan.constants[node_id]))
            except Exception as exc:  # the node's run will report the real problem
                external = f"unavailable: {exc}"
                volatile.add(node_id)
        elif decl.model_inputs:  # the files it loads: a changed file re-runs it (a fingerprint may say more)
            external = canonical({name: paths.model_stamp(kind, plan.constants[node_id][name])
                                  for name, kind in decl.model_inputs.items()
                                  if isinstance(plan.constants[node_id].get(name), str)})
        if decl.uses_settings:
            used = canonical({name: settings.get(name) for name in decl.uses_settings})
            external = used if external is None else f"{external}|{used}"
        if any(link.node_id in volatile for link in links.values()):
            volatile.add(node_id)
        signatures[node_id] = Signature(
            class_type=decl.class_type, version=decl.version,
            constants=tuple(sorted((k, canonical(v)) for k, v in plan.constants[node_id].items())),
            upstream=tuple(sorted((name, link.node_id, link.slot, signatures[link.node_id].key)
                                  for name, link in links.items())),
            external=external)
    return CacheKeys(signatures, frozenset(volatile))
