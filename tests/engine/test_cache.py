"""The output cache: signature keys, what re-runs and why, bounds and eviction."""

from engine.cache import OutputCache, Signature, estimate_nbytes
from engine.context import RunContext
from engine.events import EventLog
from engine.execute import Executor
from tests.engine.helpers import api

CHAIN = {"1": ("Number", {"value": 2}), "2": ("Number", {"value": 3}),
         "3": ("Add", {"a": ["1", 0], "b": ["2", 0]}), "4": ("Scale", {"value": ["3", 0], "factor": 2}),
         "5": ("Show", {"value": ["4", 0]})}


def test_unchanged_rerun_executes_nothing(executor, trace):
    executor.execute(api(CHAIN))
    trace.clear()
    log = EventLog()
    result = executor.execute(api(CHAIN), listener=log)
    assert trace == []
    assert result.ran == []
    assert log.of("execution_cached")[0]["nodes"] == ["1", "2", "3", "4", "5"]
    assert result.outputs == {"5": {"values": [10]}}, "cached UI output is still reported"
    assert log.of("executed")[0]["output"] == {"values": [10]}


def test_changed_constant_reruns_exactly_its_descendants(executor, trace):
    executor.execute(api(CHAIN))
    trace.clear()
    changed = dict(CHAIN, **{"2": ("Number", {"value": 4})})
    result = executor.execute(api(changed))
    assert sorted(trace) == ["2", "3", "4", "5"]
    assert result.cached == ["1"]
    assert result.outputs == {"5": {"values": [12]}}


def test_the_report_says_why_each_node_ran(executor):
    executor.execute(api(CHAIN))
    changed = dict(CHAIN, **{"4": ("Scale", {"value": ["3", 0], "factor": 5})})
    report = executor.execute(api(changed)).report
    assert report["1"].status == "cached"
    assert report["4"].status == "ran" and report["4"].reason == "input 'factor' changed (2 → 5)"
    assert report["5"].reason == "upstream node 4 (input 'value') changed"


def test_first_run_reason_and_relinking(executor):
    first = executor.execute(api(CHAIN)).report
    assert first["1"].reason == "new node (no earlier run of this node id)"
    relinked = dict(CHAIN, **{"3": ("Add", {"a": ["2", 0], "b": ["1", 0]})})
    report = executor.execute(api(relinked)).report
    assert "relinked" in report["3"].reason


def test_node_ids_are_not_part_of_the_key(executor, trace):
    executor.execute(api(CHAIN))
    trace.clear()
    renumbered = {"11": ("Number", {"value": 2}), "12": ("Number", {"value": 3}),
                  "13": ("Add", {"a": ["11", 0], "b": ["12", 0]}), "14": ("Scale", {"value": ["13", 0], "factor": 2}),
                  "15": ("Show", {"value": ["14", 0]})}
    result = executor.execute(api(renumbered))
    assert trace == [] and result.outputs == {"15": {"values": [10]}}


def test_identical_subgraphs_in_one_graph_share_entries(executor, trace):
    twins = {"1": ("Number", {"value": 7}), "2": ("Scale", {"value": ["1", 0], "factor": 3}),
             "3": ("Number", {"value": 7}), "4": ("Scale", {"value": ["3", 0], "factor": 3}),
             "5": ("Add", {"a": ["2", 0], "b": ["4", 0]}), "6": ("Show", {"value": ["5", 0]})}
    result = executor.execute(api(twins))
    assert result.outputs == {"6": {"values": [42]}}
    assert sorted(trace) == ["1", "2", "5", "6"]
    assert "identical to node 1" in result.report["3"].reason


def test_file_fingerprint_reruns_only_when_content_changes(executor, trace, paths):
    (paths.input_dir / "data.txt").write_text("one")
    graph = api({"1": ("ReadFile", {"name": "data.txt"}), "2": ("Show", {"value": ["1", 0]})})
    assert executor.execute(graph).outputs == {"2": {"values": ["one"]}}
    trace.clear()
    executor.execute(graph)
    assert trace == []
    (paths.input_dir / "data.txt").write_text("two")
    result = executor.execute(graph)
    assert trace == ["1", "2"] and result.outputs == {"2": {"values": ["two"]}}
    assert "external state changed" in result.report["1"].reason


def test_always_rerun_nodes_and_their_descendants_run_every_time(executor, trace):
    graph = api({"1": ("Clock", {}), "2": ("Show", {"value": ["1", 0]}),
                 "3": ("Number", {"value": 1}), "4": ("Show", {"value": ["3", 0]})})
    executor.execute(graph)
    trace.clear()
    result = executor.execute(graph)
    assert sorted(trace) == ["1", "2"]
    assert result.report["1"].reason == "declared to re-run on every execution"
    assert "re-run on every execution" in result.report["2"].reason


def test_entry_bound_evicts_least_recently_used(registry, paths, trace):
    executor = Executor(registry, paths, cache=OutputCache(max_entries=3), settings={"trace": trace})
    executor.execute(api(CHAIN))
    assert len(executor.cache) == 3
    assert executor.cache.evictions == 2
    trace.clear()
    result = executor.execute(api(CHAIN))
    assert result.report["5"].status == "cached"
    assert trace == []


def test_byte_bound_evicts_and_explains(registry, paths, trace):
    cache = OutputCache(max_entries=100, max_bytes=25_000)
    executor = Executor(registry, paths, cache=cache, settings={"trace": trace})
    for fill in range(3):
        executor.execute(api({"1": ("Blob", {"size": 10_000, "fill": fill}), "2": ("Show", {"value": ["1", 0]})}))
    assert cache.nbytes <= 25_000
    trace.clear()
    result = executor.execute(api({"1": ("Blob", {"size": 10_000, "fill": 0}), "2": ("Show", {"value": ["1", 0]})}))
    assert "1" in trace, "the oldest blob was evicted"
    assert result.report["1"].reason.startswith("input 'fill' changed")


def test_a_result_larger_than_the_whole_budget_is_not_kept():
    cache = OutputCache(max_entries=10, max_bytes=100)
    cache.put("small", (b"x" * 10,), None)
    cache.put("huge", (b"x" * 1000,), None)
    assert "huge" not in cache and "small" in cache


def test_eviction_during_a_run_does_not_break_it(registry, paths):
    executor = Executor(registry, paths, cache=OutputCache(max_entries=1))
    result = executor.execute(api(CHAIN))
    assert result.outputs == {"5": {"values": [10]}}


def test_estimate_nbytes_uses_nbytes_and_recurses():
    class Tensorish:
        nbytes = 4096

    class Model:
        estimated_nbytes = 10**9

    assert estimate_nbytes((Tensorish(), {"samples": Tensorish()})) == 8192
    assert estimate_nbytes([Model()]) == 10**9


def test_signature_key_ignores_upstream_node_ids():
    a = Signature("Add", "1.0.0", (), (("a", "1", 0, "k1"),))
    b = Signature("Add", "1.0.0", (), (("a", "7", 0, "k1"),))
    c = Signature("Add", "1.0.0", (), (("a", "1", 0, "k2"),))
    assert a.key == b.key != c.key


def test_settings_a_node_uses_join_its_key_and_can_be_overridden_per_run(registry, paths):
    from engine.declare import Out, node
    from engine.registry import NodeRegistry

    calls = []

    @node("Precise", outputs=[Out("STRING")], uses_settings=["precision"])
    class Precise:
        def run(self, ctx: RunContext):
            calls.append(ctx.settings.get("precision"))
            return (ctx.settings.get("precision"),)

    reg = NodeRegistry([Precise, *[d.cls for d in registry]])
    executor = Executor(reg, paths, settings={"precision": "fp32", "unrelated": 1})
    graph = api({"1": ("Precise", {}), "2": ("Show", {"value": ["1", 0]})})
    assert executor.execute(graph).outputs["2"] == {"values": ["fp32"]}
    executor.settings["unrelated"] = 2
    assert executor.execute(graph).ran == [], "a setting the node does not use changes nothing"
    result = executor.execute(graph, extra_data={"settings": {"precision": "bf16"}})
    assert result.outputs["2"] == {"values": ["bf16"]} and calls == ["fp32", "bf16"]
    assert "external state changed" in result.report["1"].reason
