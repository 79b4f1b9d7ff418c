"""A prompt is compiled once: its plan, the models its nodes declare they load, its cache keys."""

from __future__ import annotations

import pickle

import pytest

from engine.compile import CompiledPrompt
from engine.execute import Executor, ValidationFailed
from engine.registry import NodeRegistry
from tests.engine.helpers import pack_prompt


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


def test_a_changed_model_file_re_runs_its_loader_without_a_fingerprint_of_its_own(pack_registry, pack_paths):
    """A node that names the files it loads (`loads`, here through ModelFiles) gets their stamps in
    its cache key from the engine; the pack's loader defines no fingerprint()."""
    import os

    from engine.cache import OutputCache

    assert not pack_registry.get("PackLoader").has_fingerprint
    executor = Executor(pack_registry, pack_paths, OutputCache())
    assert executor.execute(pack_prompt()).ran == ["1", "2"]
    assert executor.execute(pack_prompt()).ran == []
    model = pack_paths.models_dir / "pack_models" / "a.bin"
    model.write_bytes(b"1234567")
    os.utime(model, ns=(1, 10**18))
    assert executor.execute(pack_prompt()).ran == ["1", "2"]
