"""Under area or multi-entry conditioning (a denoiser built per entry on every step) a ControlNet's hint is still
prepared once per sampling run, once for each region size it is used at, and the latent is what preparing the
hint on every step gives."""

from __future__ import annotations

import pytest
import torch

from engine.execute import Executor
from nodes.sampling import control as control_module
from tests.nodes.test_controlnet import STEPS, apply_advanced, base_graph, run_ours
from tests.nodes.test_controlnet_hint_cache import controlnet_executor, prepare_hints_on_every_call

assert STEPS > 1, "a multi-step run tells one preparation per run from one per step"


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    return controlnet_executor(tmp_path_factory.mktemp("hint_cache_areas"))


@pytest.fixture
def hint_preparations(monkeypatch) -> list[tuple[int, ...]]:
    """The latent shape of each hint preparation (`hint_for`) while sampling."""
    shapes: list[tuple[int, ...]] = []
    original = control_module.hint_for

    def counting(hint, x, *args, **kwargs):
        shapes.append(tuple(x.shape))
        return original(hint, x, *args, **kwargs)
    monkeypatch.setattr(control_module, "hint_for", counting)
    return shapes


def _area(graph: dict, node_id: str, conditioning: list) -> list:
    """The conditioning confined to the left half of the image (ConditioningSetAreaPercentage)."""
    graph[node_id] = {"class_type": "ConditioningSetAreaPercentage", "inputs": {
        "conditioning": conditioning, "width": 0.5, "height": 1.0, "x": 0.0, "y": 0.0, "strength": 1.0}}
    return [node_id, 0]


def area_and_whole(executor: Executor) -> torch.Tensor:
    """Positive: ControlNet a's entry on the left half combined with ControlNet b's over the whole image; the
    negative has no control. Sampled by `executor` (KSampler runs once per executor: pass a fresh one to rerun)."""
    graph = base_graph()
    with_a = apply_advanced(graph, "ca", (["6", 0], ["7", 0]), "a.safetensors", 4, 0.8)
    with_b = apply_advanced(graph, "cb", (["6", 0], ["7", 0]), "b.safetensors", 5, 0.8)
    graph["combine"] = {"class_type": "ConditioningCombine", "inputs": {
        "conditioning_1": _area(graph, "area", with_a[0]), "conditioning_2": with_b[0]}}
    graph["3"]["inputs"]["positive"] = ["combine", 0]
    return run_ours(executor, graph)["latent"]["samples"]


def test_one_controlnet_on_an_area_positive_and_a_whole_negative_prepares_one_hint_per_size(executor,
                                                                                              hint_preparations):
    graph = base_graph()
    positive, negative = apply_advanced(graph, "ca", (["6", 0], ["7", 0]), "a.safetensors", 4, 0.8)
    graph["3"]["inputs"]["positive"] = _area(graph, "area", positive)
    graph["3"]["inputs"]["negative"] = negative
    run_ours(executor, graph)  # a graph of its own: KSampler runs
    assert sorted(hint_preparations) == [(1, 4, 8, 4), (1, 4, 8, 8)]  # the area's size on the positive, whole on the
    # negative


def test_each_hint_of_an_area_and_a_whole_entry_is_prepared_once_a_run_giving_the_same_latent(
        executor, hint_preparations, monkeypatch):
    cached = area_and_whole(executor)
    assert sorted(hint_preparations) == [(1, 4, 8, 4), (1, 4, 8, 8)]  # a at its area's size, b whole; STEPS steps
    prepared_each_step = prepare_hints_on_every_call(monkeypatch)
    fresh = area_and_whole(Executor(executor.registry, executor.paths))  # an empty cache: KSampler runs again
    assert len(prepared_each_step) == 2 * STEPS  # each step: the area entry's call and the whole entry's
    torch.testing.assert_close(cached, fresh, atol=0, rtol=0)
