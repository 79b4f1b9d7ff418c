"""A prompt posted over HTTP is validated once and its fingerprints read once, from POST to history."""

from __future__ import annotations

import dataclasses

import engine.execute
from engine.context import RunContext
from engine.declare import Out, node
from engine.errors import ExecutionError
from engine.paths import Paths
from engine.registry import NodeRegistry
from engine.types import Int
from tests.engine.toy_nodes import TOY_NODES
from tests.server.helpers import connect, graph
from tests.server.toy_server_nodes import SERVER_TOY_NODES


@node("CountedSource", category="test", outputs=[Out("INT", "value")])
class CountedSource:
    """A value whose cache key depends on something outside the graph: counts its fingerprint reads."""

    reads = 0
    value = Int(1)

    def fingerprint(self, paths: Paths, value: int) -> str:
        CountedSource.reads += 1
        return "unchanged"

    def run(self, ctx: RunContext, value: int) -> tuple:
        return (value,)


async def test_a_posted_prompt_is_validated_once_and_fingerprinted_once(make_server, monkeypatch):
    validations = []
    real_validate = engine.execute.validate
    monkeypatch.setattr(engine.execute, "validate", lambda *a, **kw: validations.append(1) or real_validate(*a, **kw))
    CountedSource.reads = 0
    server = make_server(NodeRegistry([*TOY_NODES, *SERVER_TOY_NODES, CountedSource]))
    async with connect(server) as api:
        status, body = await api.post("/prompt", {"prompt": graph({"1": ("CountedSource", {"value": 4}),
                                                                   "2": ("Show", {"value": ["1", 0]})})})
        assert status == 200, body
        entry = await api.wait_done(body["prompt_id"])
    assert entry["status"]["status_str"] == "success" and entry["outputs"] == {"2": {"values": [4]}}
    assert len(validations) == 1, "POST /prompt validated it; the dispatcher and the worker reused that"
    assert CountedSource.reads == 1, "the fingerprint was read once, for the run's cache keys"


@node("InputFileSize", category="test", outputs=[Out("INT", "value")])
class InputFileSize:
    """The size of a file in the input folder; its own check says when the file is missing."""

    name = Int(0)

    def validate_inputs(self, paths: Paths, name: int) -> str | None:
        return None if (paths.input_dir / f"{name}.txt").is_file() else f"no file {name}.txt in the input folder"

    def run(self, ctx: RunContext, name: int) -> tuple:
        return ((ctx.paths.input_dir / f"{name}.txt").stat().st_size,)


async def test_the_worker_rechecks_files_that_went_away_while_the_prompt_waited(make_server, folders):
    (folders["input"] / "7.txt").write_text("hello")
    server = make_server(NodeRegistry([*TOY_NODES, *SERVER_TOY_NODES, InputFileSize]))
    async with connect(server) as api:
        await api.post("/prompt", {"prompt": graph({"1": ("Number", {"value": 1}),
                                                               "2": ("Slow", {"value": ["1", 0], "steps": 30,
                                                                              "delay": 0.01}),
                                                               "3": ("Show", {"value": ["2", 0]})})})
        status, second = await api.post("/prompt", {"prompt": graph({"1": ("InputFileSize", {"name": 7}),
                                                                     "2": ("Show", {"value": ["1", 0]})})})
        assert status == 200, "valid when queued"
        (folders["input"] / "7.txt").unlink()
        entry = await api.wait_done(second["prompt_id"])
    error = entry["status"]["messages"][-1][1]
    assert entry["status"]["status_str"] == "error" and "no longer validates" in error["exception_message"]
    assert error["node_errors"]["1"]["errors"][0]["details"] == "no file 7.txt in the input folder"
    assert set(error) == {field.name for field in dataclasses.fields(ExecutionError)}, "the executor's error type"
