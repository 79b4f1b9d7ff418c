"""What the backend tests share: a harness that drives a PromptQueue on a backend and records its
events, the toy prompt every backend runs, and the node packs its workers load."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.backends.base import Backend
from engine.events import TERMINAL_EVENTS
from engine.jobstore import Job, JobStore
from engine.queue import PromptQueue

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_PACKS = [ROOT / "tests" / "engine" / "toy_nodes.py", ROOT / "tests" / "server" / "toy_server_nodes.py",
              ROOT / "bench" / "scale_pack" / "scale_nodes.py", HERE / "contract_nodes.py"]
BACKENDS = ["local", "ray"]
# For parametrize: the Ray case carries the `ray` mark, so `-m "not ray"` runs the local one alone.
BACKEND_PARAMS = ["local", pytest.param("ray", marks=pytest.mark.ray)]
POLL = 0.02  # seconds between two looks at the store


class Harness:
    """A PromptQueue on one backend, recording every event per prompt in arrival order."""

    def __init__(self, backend: Backend, store: JobStore, validator) -> None:
        self.store = store
        self.events: list[tuple[str, dict[str, Any], str | None]] = []
        self._lock = threading.Lock()
        self.queue = PromptQueue(backend, store, self._publish, validator=validator)

    def _publish(self, event: str, data: dict[str, Any], client_id: str | None) -> None:
        if event in TERMINAL_EVENTS or (event == "executing" and data.get("node") is None):
            data = {**data, "history_state": self.store.get(data["prompt_id"]).state}  # what a client would read
        with self._lock:
            self.events.append((event, data, client_id))

    def submit(self, prompt: dict, prompt_id: str, client_id: str | None = None) -> str:
        outputs = [nid for nid, node in prompt.items() if node["class_type"] in ("Show", "SolidImage", "SaveImage")]
        self.queue.submit(Job(prompt_id=prompt_id, number=0, prompt=prompt, outputs_to_execute=outputs,
                              client_id=client_id))
        return prompt_id

    def of(self, prompt_id: str) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return [(e, d) for e, d, _ in self.events if e != "status" and d.get("prompt_id") == prompt_id]

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "condition"):
        for _ in range(int(timeout / POLL)):
            if value := predicate():
                return value
            time.sleep(POLL)
        raise AssertionError(f"{what} not reached in {timeout}s")

    def wait_done(self, prompt_id: str, timeout: float = 60.0) -> Job:
        """The finished job, once its last event (`executing` of no node) was published."""
        self.wait_for(lambda: any(n == "executing" and d["node"] is None for n, d in self.of(prompt_id)),
                      timeout, f"prompt {prompt_id} finished")
        return self.store.get(prompt_id)

    def worker(self, worker_id: str) -> dict[str, Any]:
        return next(w for w in self.queue.workers() if w["id"] == worker_id)


def toy_prompt(ckpt: str = "a.safetensors", seed: int = 1, steps: int = 3, delay: float = 0.01,
               load_seconds: float = 0.05) -> dict:
    """Loader → sampler → Show, plus a SolidImage output whose colour is the sampled value."""
    return {
        "1": {"class_type": "ScaleLoader", "inputs": {"ckpt_name": ckpt, "load_seconds": load_seconds}},
        "2": {"class_type": "ToySampler", "inputs": {"model": ["1", 0], "seed": seed, "steps": steps, "delay": delay}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
        "4": {"class_type": "SolidImage", "inputs": {"value": ["2", 0], "color": seed * 4099 % 0xFFFFFF,
                                                      "size": 4, "filename_prefix": "contract"}},
    }
