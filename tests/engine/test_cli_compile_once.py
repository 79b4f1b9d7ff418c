"""`python -m engine run` compiles a prompt once, as `POST /prompt` does: one validation, one
fingerprint read per node, from the command line to the saved result (in-process, counting calls)."""

from __future__ import annotations

import json

import engine.execute
from engine.cli import EXIT_OK, main

# A pack whose fingerprint appends a line to a file per call (the pack is loaded from a folder,
# as a user's is, so its module is not ours to patch).
COUNTED_PACK = '''
from engine.context import RunContext
from engine.declare import NodeResult, Out, node
from engine.types import Int


@node("CountedValue", category="test", outputs=[Out("INT", "value")])
class CountedValue:
    value = Int(1)

    def fingerprint(self, paths, value):
        with open(paths.input_dir / "fingerprint_reads.log", "a") as log:
            log.write("read\\n")
        return "unchanged"

    def run(self, ctx: RunContext, value):
        return (value,)


@node("Keep", category="test", output_node=True)
class Keep:
    value = Int(0)

    def run(self, ctx: RunContext, value):
        return NodeResult(ui={"values": [value]})
'''


def test_the_cli_validates_once_and_reads_each_fingerprint_once(tmp_path, monkeypatch):
    (tmp_path / "custom_nodes").mkdir()
    (tmp_path / "custom_nodes" / "counted_pack.py").write_text(COUNTED_PACK)
    (tmp_path / "input").mkdir()
    workflow = tmp_path / "counted.json"
    workflow.write_text(json.dumps({"1": {"class_type": "CountedValue", "inputs": {"value": 4}},
                                    "2": {"class_type": "Keep", "inputs": {"value": ["1", 0]}}}))
    validations = []
    real_validate = engine.execute.validate
    monkeypatch.setattr(engine.execute, "validate", lambda *a, **kw: validations.append(1) or real_validate(*a, **kw))
    code = main(["run", str(workflow), "--quiet", "--extensions", str(tmp_path / "custom_nodes"),
                 "--input-dir", str(tmp_path / "input"), "--output-dir", str(tmp_path / "output"),
                 "--models-dir", str(tmp_path / "models")])
    assert code == EXIT_OK
    assert len(validations) == 1, "compiled once; the run reused the plan"
    assert (tmp_path / "input" / "fingerprint_reads.log").read_text().splitlines() == ["read"]
