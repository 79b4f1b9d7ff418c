"""The executor: dependency order, events, failures and interrupts."""

import threading

import pytest

from engine.context import InterruptHandle, RunContext
from engine.events import EventLog
from engine.execute import ValidationFailed
from tests.engine.helpers import api

SUM = {"1": ("Number", {"value": 2}), "2": ("Number", {"value": 3}),
       "3": ("Add", {"a": ["1", 0], "b": ["2", 0]}), "4": ("Show", {"value": ["3", 0]})}


def test_runs_in_dependency_order_and_returns_ui_outputs(executor, trace):
    result = executor.execute(api(SUM))
    assert result.status == "success"
    assert result.outputs == {"4": {"values": [5]}}
    assert trace.index("3") > trace.index("1") and trace.index("3") > trace.index("2") and trace[-1] == "4"


def test_nodes_nobody_needs_never_run(executor, trace):
    executor.execute(api(SUM | {"8": ("Number", {"value": 9}), "9": ("Scale", {"value": ["8", 0], "factor": 2})}))
    assert "8" not in trace and "9" not in trace


def test_event_sequence_matches_comfyui(executor):
    log = EventLog()
    executor.execute(api(SUM), prompt_id="p1", listener=log)
    assert log.names() == ["execution_start", "execution_cached", "executing", "executing", "executing",
                           "executing", "executed", "execution_success"]
    assert [d["node"] for d in log.of("executing")] == ["1", "2", "3", "4"]
    assert log.of("executed")[0] == {"node": "4", "display_node": "4", "output": {"values": [5]}, "prompt_id": "p1"}
    assert all(d["prompt_id"] == "p1" for _, d in log.events)


def test_progress_events_come_from_inside_a_node(executor):
    log = EventLog()
    executor.execute(api({"1": ("Number", {"value": 0}), "2": ("Slow", {"value": ["1", 0], "steps": 3, "delay": 0}),
                          "3": ("Show", {"value": ["2", 0]})}), listener=log)
    assert [(d["value"], d["max"], d["node"]) for d in log.of("progress")] == [(1, 3, "2"), (2, 3, "2"), (3, 3, "2")]


def test_invalid_workflow_raises_with_node_errors(executor, trace):
    with pytest.raises(ValidationFailed) as failure:
        executor.execute(api({"1": ("Number", {"value": "x"}), "2": ("Show", {"value": ["1", 0]})}))
    assert "1" in failure.value.result.node_errors
    assert trace == []


def test_failing_node_reports_error_and_next_run_works(executor, trace):
    graph = {"1": ("Number", {"value": 4}), "2": ("Fail", {"value": ["1", 0], "fail": True}),
             "3": ("Show", {"value": ["2", 0]})}
    log = EventLog()
    result = executor.execute(api(graph), prompt_id="p", listener=log)
    assert result.status == "error"
    error = log.of("execution_error")[0]
    assert error["node_id"] == "2" and error["node_type"] == "Fail"
    assert error["exception_message"] == "toy failure requested"
    assert error["exception_type"] == "builtins.RuntimeError"
    assert error["executed"] == ["1"]
    assert any("toy failure requested" in line for line in error["traceback"])
    assert error["current_inputs"] == {"fail": "True"}
    assert log.names()[-1] == "execution_error"

    trace.clear()
    graph["2"] = ("Fail", {"value": ["1", 0], "fail": False})
    again = executor.execute(api(graph))
    assert again.status == "success" and again.outputs == {"3": {"values": [4]}}
    assert trace == ["2", "3"], "the node before the failure stays cached"


def test_interrupt_mid_node_stops_the_run_and_the_next_run_works(executor, trace):
    interrupt = InterruptHandle()
    executor.settings["on_step"] = lambda step: interrupt.set() if step == 2 else None
    graph = {"1": ("Number", {"value": 0}), "2": ("Slow", {"value": ["1", 0], "steps": 100, "delay": 0}),
             "3": ("Show", {"value": ["2", 0]})}
    log = EventLog()
    result = executor.execute(api(graph), listener=log, interrupt=interrupt)
    assert result.status == "interrupted"
    assert len(log.of("progress")) == 3, "stops at the step where it was asked to"
    assert log.of("execution_interrupted")[0]["node_id"] == "2"
    assert "3" not in trace

    del executor.settings["on_step"]
    again = executor.execute(api(graph))
    assert again.status == "success" and again.outputs == {"3": {"values": [100]}}


def test_interrupt_from_another_thread_between_nodes(executor):
    interrupt = InterruptHandle()
    graph = {"1": ("Number", {"value": 0})}
    previous = "1"
    for i in range(2, 40):
        graph[str(i)] = ("Slow", {"value": [previous, 0], "steps": 1, "delay": 0.01})
        previous = str(i)
    graph["99"] = ("Show", {"value": [previous, 0]})
    timer = threading.Timer(0.05, interrupt.set)
    timer.start()
    result = executor.execute(api(graph), interrupt=interrupt)
    timer.join()
    assert result.status == "interrupted"
    assert len(result.ran) < 39


def test_a_node_breaking_its_declared_contract_is_an_execution_error(executor):
    result = executor.execute(api({"1": ("Number", {"value": 1}), "2": ("BadReturn", {"value": ["1", 0]}),
                                   "3": ("Show", {"value": ["2", 1]})}))
    assert result.status == "error"
    assert "returned 1 value(s) but declares 2" in result.error.exception_message


def test_hidden_prompt_and_extra_pnginfo_reach_nodes_that_ask(registry, paths):
    from engine.declare import NodeResult, node
    from engine.execute import Executor
    from engine.registry import NodeRegistry
    from engine.types import Link

    @node("Recorder", output_node=True, hidden=["prompt", "extra_pnginfo"])
    class Recorder:
        value = Link("INT")

        def run(self, ctx: RunContext, value):
            return NodeResult(ui={"prompt": [ctx.prompt], "info": [ctx.extra_pnginfo]})

    reg = NodeRegistry([Recorder, *list(d.cls for d in registry)])
    workflow = api({"1": ("Number", {"value": 1}), "2": ("Recorder", {"value": ["1", 0]})})
    result = Executor(reg, paths).execute(workflow, extra_data={"extra_pnginfo": {"workflow": {"v": 1}}})
    assert result.outputs["2"]["prompt"] == [workflow.to_api()]
    assert result.outputs["2"]["info"] == [{"workflow": {"v": 1}}]
