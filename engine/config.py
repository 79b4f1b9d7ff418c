"""One engine instance's settings, and building its registry and executor from them.

Shared by the CLI and the server so both load the same node packs from the same folders.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.cache import OutputCache
from engine.execute import Executor
from engine.model_paths import read_extra_model_paths
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.validate import Limits

# The project's own node packages, imported by name: the engine has no import-time tie to them.
BUILTIN_NODE_PACKAGES = ("nodes",)
# The `precision` run setting's values, for every front end and the loaders (what each means: nodes.models.runtime).
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
# The `compile` run setting: whether the UNet runs compiled for this CPU (what each means: nodes.models.compiled).
COMPILE_MODES = ("auto", "off", "on")


@dataclass
class EngineConfig:
    models_dir: Path = Path("models")
    input_dir: Path = Path("input")
    output_dir: Path = Path("output")
    temp_dir: Path = Path("temp")
    extra_model_paths: Path | None = None  # ComfyUI's extra_model_paths.yaml format (engine.model_paths)
    extension_dirs: list[Path] = field(default_factory=lambda: [Path("custom_nodes")])
    node_packages: tuple[str, ...] = BUILTIN_NODE_PACKAGES
    cache_entries: int = 1_000
    cache_bytes: int = 8 * 2**30
    limits: Limits = field(default_factory=Limits)
    settings: dict[str, Any] = field(default_factory=dict)

    def paths(self) -> Paths:
        extra = read_extra_model_paths(self.extra_model_paths) if self.extra_model_paths else {}
        return Paths(self.models_dir, self.input_dir, self.output_dir, self.temp_dir, extra_model_dirs=extra)


def build_registry(config: EngineConfig) -> NodeRegistry:
    """The built-in node packages plus every extension folder; broken packs land in `failures`."""
    registry = NodeRegistry()
    for package in config.node_packages:
        registry.load_package(package)
    for folder in config.extension_dirs:
        registry.load_extensions(Path(folder))
    for failure in registry.failures:
        print(f"warning: node pack {failure.name!r} was skipped: {failure.error}", file=sys.stderr)
    return registry


def build_executor(config: EngineConfig, registry: NodeRegistry | None = None) -> Executor:
    return Executor(registry or build_registry(config), config.paths(),
                    OutputCache(config.cache_entries, config.cache_bytes), config.limits, config.settings)
