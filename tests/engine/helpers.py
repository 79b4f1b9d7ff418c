"""What the engine tests share besides fixtures: compact workflow literals."""

from engine.workflow import Workflow


def api(nodes: dict) -> Workflow:
    """A workflow from a compact dict: {id: (class_type, inputs)}."""
    return Workflow.from_api({nid: {"class_type": ct, "inputs": inputs} for nid, (ct, inputs) in nodes.items()})
