"""Fixtures for engine tests: a registry of toy nodes and an executor that traces what ran."""

import pytest

from engine.execute import Executor
from engine.paths import Paths
from engine.registry import NodeRegistry
from tests.engine.toy_nodes import TOY_NODES


@pytest.fixture
def registry():
    return NodeRegistry(TOY_NODES)


@pytest.fixture
def paths(tmp_path):
    paths = Paths(models_dir=tmp_path / "models", input_dir=tmp_path / "input",
                  output_dir=tmp_path / "output", temp_dir=tmp_path / "temp")
    paths.input_dir.mkdir()
    return paths


@pytest.fixture
def trace():
    return []


@pytest.fixture
def executor(registry, paths, trace):
    return Executor(registry, paths, settings={"trace": trace})
