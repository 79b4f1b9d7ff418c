"""Where prompts run: the in-process backend (default) or a Ray cluster of workers.

`engine.queue.PromptQueue` dispatches the durable queue onto a backend's workers. Ray is an
optional extra: `engine.backends.ray_backend` is the only module that imports it, and only when
that backend is chosen.
"""

from __future__ import annotations

from engine.backends.base import Backend
from engine.backends.local import LocalBackend
from engine.config import EngineConfig, build_executor
from engine.execute import Executor

BACKENDS = ("local", "ray")


def create_backend(kind: str, executor: Executor, config: EngineConfig, *, workers: int | None = None,
                   preview_interval: float = 0.1, ray_address: str | None = "auto",
                   shared_outputs: bool = False) -> Backend:
    """The backend named `kind`. Local: `executor` is the first worker (it shares the server's cache).

    Ray: `shared_outputs` means the output and temp folders are on storage every worker mounts at
    the same path; otherwise workers send their files back to the server's folders.
    """
    if kind == "local":
        extra = [build_executor(config, executor.registry) for _ in range(max(0, (workers or 1) - 1))]
        return LocalBackend([executor, *extra], preview_interval)
    if kind == "ray":
        from engine.backends.ray_backend import RayBackend  # the only place ray gets imported

        return RayBackend(config, None if shared_outputs else executor.paths, ray_address, workers,
                          preview_interval=preview_interval)
    raise ValueError(f"unknown backend {kind!r}; expected one of {', '.join(BACKENDS)}")
