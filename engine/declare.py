"""Node declarations: one typed description per node type, from which everything else derives.

A node type is a plain class decorated with `@node(...)`. Its class attributes that are
`InputSpec`s are its inputs, in declaration order; its docstring is its description; its
`run(ctx, **inputs)` method does the work. Validation, `/object_info`, the UI widget order,
the CLI's `nodes` listing and the docs all read the `NodeDeclaration` built here.

    @node("KSampler", category="sampling", outputs=[Out(LATENT)])
    class KSampler:
        '''Denoise a latent with a model, guided by conditioning.'''
        model = Link(MODEL)
        seed = Int(0, min=0, max=2**64 - 1, control_after_generate=True)

        def run(self, ctx: RunContext, model, seed): ...
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

from pydantic import BaseModel, ConfigDict, Field

from engine.node_contract import check_node_contract
from engine.types import InputSpec

DECLARATION_ATTR = "__node_declaration__"
HIDDEN_TYPES = ("PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID")


class Out(BaseModel):
    """A typed, named output socket."""

    model_config = ConfigDict(frozen=True)

    type: str
    name: str = ""
    tooltip: str | None = None

    def __init__(self, type: str, name: str = "", **kw: Any) -> None:
        super().__init__(type=type, name=name or type, **kw)


class Provenance(BaseModel):
    """What a node adds to the reproducibility record saved with an image made downstream of it.

    The values of `inputs` (constants, or scalar values read from links) go into the record's
    `section` list, e.g. a sampler's seed and steps under "samplers". Model files the node loads
    (inputs declared with `loads`) are recorded with their hashes without being listed here.
    """

    model_config = ConfigDict(frozen=True)

    section: str
    inputs: tuple[str, ...] = ()

    def __init__(self, section: str, inputs: Iterable[str] = ()) -> None:
        super().__init__(section=section, inputs=tuple(inputs))


class NodeResult(BaseModel):
    """What `run` returns when it has UI output (images to show) besides its socket values."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    outputs: tuple = ()
    ui: dict[str, Any] | None = None


class NodeDeclaration(BaseModel):
    """Everything the engine knows about a node type."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    class_type: str
    display_name: str
    category: str = ""
    description: str = ""
    version: str = "1.0.0"
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    outputs: tuple[Out, ...] = ()
    output_node: bool = False
    hidden: tuple[str, ...] = ()
    always_rerun: bool = False
    uses_settings: tuple[str, ...] = ()
    deprecated: bool = False
    provenance: Provenance | None = None
    legacy_names: tuple[str, ...] = ()
    cls: type

    @property
    def required(self) -> dict[str, InputSpec]:
        return {k: v for k, v in self.inputs.items() if not v.optional}

    @property
    def optional(self) -> dict[str, InputSpec]:
        return {k: v for k, v in self.inputs.items() if v.optional}

    @property
    def input_order(self) -> list[str]:
        """Required inputs first, then optional ones: ComfyUI's order for widgets_values."""
        return list(self.required) + list(self.optional)

    @property
    def model_inputs(self) -> dict[str, str]:
        """Input name → model kind, for the inputs that name a model file this node loads."""
        return {name: spec.loads for name, spec in self.inputs.items() if spec.loads}

    @property
    def has_fingerprint(self) -> bool:
        return callable(getattr(self.cls, "fingerprint", None))

    @property
    def has_custom_validation(self) -> bool:
        return callable(getattr(self.cls, "validate_inputs", None))

    def object_info(self, paths: Any = None) -> dict[str, Any]:
        """This node in ComfyUI's `/object_info` shape."""
        required = {name: spec.object_info(paths) for name, spec in self.required.items()}
        optional = {name: spec.object_info(paths) for name, spec in self.optional.items()}
        info_input: dict[str, Any] = {"required": required}
        if optional:
            info_input["optional"] = optional
        if self.hidden:
            info_input["hidden"] = {name: name.upper() for name in self.hidden}
        return {
            "input": info_input,
            "input_order": {"required": list(required), **({"optional": list(optional)} if optional else {})},
            "output": [o.type for o in self.outputs],
            "output_is_list": [False for _ in self.outputs],
            "output_name": [o.name for o in self.outputs],
            "output_tooltips": [o.tooltip or "" for o in self.outputs],
            "name": self.class_type,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.cls.__module__,
            "category": self.category,
            "output_node": self.output_node,
            "deprecated": self.deprecated,
            "experimental": False,
        }


def _collect_inputs(cls: type) -> dict[str, InputSpec]:
    """Input specs in declaration order, base classes first (their attributes come earlier)."""
    inputs: dict[str, InputSpec] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, InputSpec):
                inputs[name] = value
    return inputs


def node(class_type: str, *, display_name: str | None = None, category: str = "",
         version: str = "1.0.0", outputs: Iterable[Out] = (), output_node: bool = False,
         hidden: Iterable[str] = (), always_rerun: bool = False, uses_settings: Iterable[str] = (),
         deprecated: bool = False, provenance: Provenance | None = None,
         legacy_names: Iterable[str] = ()) -> Callable[[type], type]:
    """Declare a class as a node type. The class is returned unchanged, with its declaration attached.

    `hidden` names context values the node reads (`prompt`, `extra_pnginfo`, `unique_id`);
    they are listed in `/object_info` for ComfyUI clients and reach the node through its RunContext.
    `uses_settings` names run settings (e.g. `precision`) the result depends on: their values join
    the node's cache key, so changing one re-runs it. `provenance` says what the node adds to the
    record saved with images made from its outputs. `always_rerun` makes the node (and everything
    downstream) execute on every run; a node whose result depends on something outside the graph
    (a file) defines `fingerprint(paths, **constants)`. `legacy_names` are class names older
    workflow files saved for this node (ComfyUI renamed it since): they still find it, unlisted.
    """

    def decorate(cls: type) -> type:
        if not callable(getattr(cls, "run", None)):
            raise TypeError(f"node {class_type!r}: class {cls.__name__} has no run(ctx, **inputs) method")
        for name in hidden:
            if name.upper() not in HIDDEN_TYPES:
                raise TypeError(f"node {class_type!r}: unknown hidden input {name!r}")
        check_node_contract(class_type, cls, _collect_inputs(cls))
        declaration = NodeDeclaration(
            class_type=class_type,
            display_name=display_name or class_type,
            category=category,
            description=inspect.cleandoc(cls.__doc__ or ""),
            version=version,
            inputs=_collect_inputs(cls),
            outputs=tuple(outputs),
            output_node=output_node,
            hidden=tuple(hidden),
            always_rerun=always_rerun,
            uses_settings=tuple(uses_settings),
            deprecated=deprecated,
            provenance=provenance,
            legacy_names=tuple(legacy_names),
            cls=cls,
        )
        setattr(cls, DECLARATION_ATTR, declaration)
        return cls

    return decorate


def declaration_of(obj: Any) -> NodeDeclaration | None:
    """The declaration attached to a node class, or None for anything else."""
    decl = getattr(obj, DECLARATION_ATTR, None) if inspect.isclass(obj) else None
    return decl if isinstance(decl, NodeDeclaration) and decl.cls is obj else None
