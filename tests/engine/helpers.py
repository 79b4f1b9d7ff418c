"""What the engine tests share besides fixtures: compact workflow literals."""

from engine.workflow import Workflow


def api(nodes: dict) -> Workflow:
    """A workflow from a compact dict: {id: (class_type, inputs)}."""
    return Workflow.from_api({nid: {"class_type": ct, "inputs": inputs} for nid, (ct, inputs) in nodes.items()})


def pack_prompt(model: str = "a.bin", seed: int = 1) -> Workflow:
    """The pack's loader feeding its sampler (tests/engine/pack_with_own_models.py)."""
    return Workflow.from_api({"1": {"class_type": "PackLoader", "inputs": {"model_name": model}},
                              "2": {"class_type": "PackSampler", "inputs": {"model": ["1", 0], "seed": seed,
                                                                            "steps": 2}}})
