"""A compiled graph's weights, kept apart from the graph so that one trace serves every set of weights.

Tracing a UNet into OpenVINO takes a minute or more; putting other weights into a traced graph takes
seconds. So the graph is traced once per architecture and input shapes, from a stand-in copy whose every
parameter holds distinct random values, and the constants that hold each parameter are found by their
bytes (the converter keeps a parameter's bytes, reshaped at most). Those constants then become the graph's
extra inputs (`weightless`), so the graph kept on disk is its structure alone, kilobytes rather than the
weights' gigabytes. Compiling for a checkpoint, a LoRA or a merge puts the module's current tensors in
as constants again. A parameter the converter transformed (found in no constant) would stay at its
stand-in value: such a graph is not used at all.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

WEIGHTS_FILE = "weights.json"


def module_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer by name: what a compiled graph holds as constants."""
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def structure_of(module: torch.nn.Module) -> dict[str, Any]:
    """What a traced graph depends on besides its weights: the class, its config, the tensors' shapes."""
    config = dict(getattr(module, "config", None) or {})
    tensors = module_tensors(module)
    # diffusers' private entries (`_use_default_values` is a set made a list: its order changes per process)
    public = {key: value for key, value in config.items() if not key.startswith("_")}
    return {"class": f"{type(module).__module__}.{type(module).__qualname__}",
            "config": json.dumps(public, sort_keys=True, default=str),
            "tensors": sorted((name, list(t.shape), str(t.dtype)) for name, t in tensors.items()),
            # integer buffers stay in the graph as traced: their values are part of its structure
            "fixed": sorted((name, _digest(tensor_bytes(t))) for name, t in tensors.items()
                            if not t.is_floating_point())}


def stand_in(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy of `module` whose tensors hold distinct random values, so that each is found by its bytes."""
    copied = copy.deepcopy(module)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module_tensors(copied).values():
            if tensor.is_floating_point():
                tensor.copy_((torch.rand(tensor.shape, generator=generator) * 2 - 1) * 0.05)
    return copied


def _digest(array: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data, digest_size=16).hexdigest()


def tensor_bytes(tensor: torch.Tensor) -> np.ndarray:
    """The tensor's bytes, in its plain (contiguous) layout."""
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy()


@dataclass(frozen=True)
class GraphWeights:
    """Which constants of a traced graph hold which tensor of the module; `unplaced` found in none.
    `mismatch` says why the graph, given the real weights when it was traced, did not compute what the
    module computes (a constant derived from weights in a way no byte match finds); None when it did."""

    targets: dict[str, list[str]]
    unplaced: list[str]
    mismatch: str | None = None

    @property
    def usable(self) -> bool:
        return not self.unplaced and self.mismatch is None

    def save(self, folder: Path) -> None:
        (folder / WEIGHTS_FILE).write_text(json.dumps({"targets": self.targets, "unplaced": self.unplaced,
                                                       "mismatch": self.mismatch}))

    @classmethod
    def load(cls, folder: Path) -> GraphWeights:
        data = json.loads((folder / WEIGHTS_FILE).read_text())
        return cls(targets=data["targets"], unplaced=data["unplaced"], mismatch=data.get("mismatch"))


def constants(graph: Any) -> dict[str, Any]:
    """The graph's constant nodes by name."""
    return {node.get_friendly_name(): node for node in graph.get_ops() if node.get_type_name() == "Constant"}


def locate(graph: Any, traced: torch.nn.Module) -> GraphWeights:
    """Find each tensor of the stand-in `traced` among the graph's constants by its bytes."""
    by_digest: dict[str, list[str]] = {}
    for name, node in constants(graph).items():
        by_digest.setdefault(_digest(node.get_data()), []).append(name)
    targets: dict[str, list[str]] = {}
    unplaced = []
    for name, tensor in module_tensors(traced).items():
        found = by_digest.get(_digest(tensor_bytes(tensor))) if tensor.is_floating_point() else None
        if found:
            targets[name] = found
        elif tensor.is_floating_point():
            unplaced.append(name)
    return GraphWeights(targets, sorted(unplaced))


def weightless(graph: Any, weights: GraphWeights) -> None:
    """Turn the constants `weights` places into inputs of the graph, of the same name, type and shape: the
    graph then holds no weights (`put_weights` makes them constants again before compiling)."""
    from openvino import op

    nodes = constants(graph)
    inputs = []
    for name in dict.fromkeys(target for targets in weights.targets.values() for target in targets):  # once each
        old = nodes[name]
        placeholder = op.Parameter(old.get_output_element_type(0), old.get_output_partial_shape(0))
        placeholder.set_friendly_name(name)
        old.output(0).replace(placeholder.output(0))
        inputs.append(placeholder)
    graph.add_parameters(inputs)


def put_weights(graph: Any, weights: GraphWeights, tensors: Mapping[str, torch.Tensor]) -> None:
    """Put a module's tensors (`module_tensors`, taken while its patches are applied) into a `weightless` graph
    as constants where it has inputs for them, sharing their memory (a channels_last convolution weight is
    copied to the plain layout first). Safe because weights are never changed in place: patches swap in new
    tensors (nodes.models.patching.applied), so the mapping stays a snapshot of the weights it was taken with,
    and the arrays keep the tensors they view alive for as long as the compiled model holds them."""
    from openvino import op

    placeholders = {node.get_friendly_name(): node for node in graph.get_parameters()}
    for name, targets in weights.targets.items():
        values = tensors[name].detach().contiguous().numpy()
        for target in targets:
            old = placeholders[target]
            replacement = op.Constant(values.reshape(tuple(old.get_output_shape(0))), shared_memory=True)
            old.output(0).replace(replacement.output(0))
            graph.remove_parameter(old)
