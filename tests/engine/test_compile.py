"""A prompt is compiled once: its plan, the models its nodes declare they load, its cache keys."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from engine.compile import CompiledPrompt
from engine.execute import Executor, ValidationFailed
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.workflow import Workflow

PACK = Path(__file__).with_name("pack_with_own_models.py")


@pytest.fixture
def pack_registry(tmp_path) -> NodeRegistry:
    """A registry that knows only the third-party pack, loaded from an extension folder."""
    folder = tmp_path / "custom_nodes"
    folder.mkdir()
    shutil.copy(PACK, folder / "pack_with_own_models.py")
    registry = NodeRegistry()
    assert registry.load_extensions(folder) == ["PackLoader", "PackSampler"], registry.failures
    return registry


@pytest.fixture
def pack_paths(tmp_path) -> Paths:
    (tmp_path / "models" / "pack_models").mkdir(parents=True)
    (tmp_path / "models" / "pack_models" / "a.bin").write_bytes(b"12345")
    return Paths(models_dir=tmp_path / "models", output_dir=tmp_path / "out")


def pack_prompt(model: str = "a.bin", seed: int = 1) -> Workflow:
    return Workflow.from_api({"1": {"class_type": "PackLoader", "inputs": {"model_name": model}},
                              "2": {"class_type": "PackSampler", "inputs": {"model": ["1", 0], "seed": seed, "steps": 2}}})


def test_a_packs_loader_declares_the_model_it_loads(pack_registry, pack_paths):
    compiled = Executor(pack_registry, pack_paths).compile(pack_prompt())
    assert [(m.node_id, m.kind, m.name) for m in compiled.models] == [("1", "pack_models", "a.bin")]
    assert compiled.model_keys == {"pack_models/a.bin"}


def test_compiling_an_invalid_prompt_raises_with_node_errors(pack_registry, pack_paths):
    with pytest.raises(ValidationFailed) as failed:
        Executor(pack_registry, pack_paths).compile(pack_prompt(model="missing.bin"))
    assert failed.value.result.node_errors["1"]["errors"][0]["type"] == "value_not_in_list"


def test_cache_keys_are_computed_once_and_reused_by_the_run(pack_registry, pack_paths):
    executor = Executor(pack_registry, pack_paths)
    compiled = executor.compile(pack_prompt())
    keys = compiled.keys(pack_paths)
    assert compiled.keys(pack_paths) is keys
    run = executor.run(compiled)
    assert run.status == "success" and run.keys is keys and run.outputs == {}
    assert run.report["2"].status == "ran"


def test_a_compiled_prompt_pickles_without_its_node_classes_and_binds_to_a_workers_registry(
        pack_registry, pack_paths):
    compiled = Executor(pack_registry, pack_paths).compile(pack_prompt(seed=5))
    keys = compiled.keys(pack_paths)
    copy: CompiledPrompt = pickle.loads(pickle.dumps(compiled))
    assert copy.plan.declarations == {} and copy.keys(pack_paths) == keys, "keys travel, classes do not"
    with pytest.raises(KeyError, match="PackLoader"):
        copy.bind(NodeRegistry())
    run = Executor(pack_registry, pack_paths).run(copy)
    assert run.status == "success"
