"""One worker's engine: its executor and caches, running one prompt at a time as a stream of events.

The same class runs in the server's process (`LocalBackend`) and inside a Ray actor
(`RayBackend`). `run_prompt` is a generator: the executor runs in a thread of its own and its
events are yielded in order, ending with one `RESULT`. Terminal events are yielded like the
others; the server holds them back until the history is written. Previews are throttled here,
at the source, to one per `preview_interval` seconds per prompt, so a fast sampler cannot flood
the link to the server with images.
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any, Iterator

from engine.backends.base import FILE, RESULT, Event, JobOutcome
from engine.backends.outputs import OutputShipper
from engine.compile import CompiledPrompt
from engine.context import InterruptHandle
from engine.errors import ExecutionError
from engine.events import EXECUTED, EXECUTION_SUCCESS, PREVIEW, TERMINAL_EVENTS
from engine.execute import Executor, RunResult, ValidationFailed
from engine.jobstore import Job
from engine.validate import recheck
from engine.workflow import Workflow, WorkflowFormatError

_DONE = object()


class PreviewThrottle:
    """At most one preview per `interval` seconds (per prompt: one throttle per run)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = float("-inf")

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True


def device_description() -> dict[str, Any]:
    """The worker's device: the visible GPU if torch is loaded and sees one, else the CPU."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return {"type": "cuda", "name": torch.cuda.get_device_name(0),
                    "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    except Exception:  # a broken driver must not break the worker listing
        pass
    return {"type": "cpu", "name": "cpu", "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


class EngineWorker:
    """Runs prompts on one executor; `ship_outputs` sends written files back with the events."""

    def __init__(self, executor: Executor, worker_id: str, preview_interval: float = 0.1,
                 ship_outputs: bool = False) -> None:
        self.executor = executor
        self.worker_id = worker_id
        self.preview_interval = preview_interval
        self.shipper = OutputShipper(executor.paths) if ship_outputs else None
        self.model_loads: Counter[str] = Counter()   # model key (`kind/name`) → times a loader ran here
        self._models: dict[str, str] = {}              # cache key of a loader's outputs → model key
        self.prompts_run = 0
        self._lock = threading.Lock()
        self._current: tuple[str, InterruptHandle] | None = None
        self._cancelled: set[str] = set()
        self._free_requested = False

    # --- control (may be called while a prompt streams) -----------------------------------

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Stop the running prompt (only if it is `prompt_id`, when given); remembered if it has not started."""
        with self._lock:
            if self._current is not None and prompt_id in (None, self._current[0]):
                self._current[1].set()
                return True
            if prompt_id is not None:
                self._cancelled.add(prompt_id)
            return False

    def free(self, unload_models: bool = True) -> None:
        """Drop cached outputs (models included) before the next prompt: the cache belongs to the run."""
        if unload_models:
            with self._lock:
                self._free_requested = True

    def describe(self) -> dict[str, Any]:
        """Who this worker is and what it holds: the `/workers` entry and the dispatcher's affinity input."""
        keys = self.executor.cache.keys()  # may run beside a prompt (Ray's second actor thread)
        held = set(keys)
        models = sorted({model for key, model in self._models.items() if key in held})
        checkpoints = [model.split("/", 1)[1] for model in models if model.startswith("checkpoints/")]
        with self._lock:  # the prompt's thread counts loads and sets the current prompt under it
            running = self._current[0] if self._current else None
            model_loads = dict(self.model_loads)
        return {"id": self.worker_id, "host": socket.gethostname(), "pid": os.getpid(),
                "device": device_description(), "prompt_id": running, "prompts_run": self.prompts_run,
                "models": models, "checkpoints": checkpoints, "model_loads": model_loads, "cache_entries": len(keys),
                "cache_bytes": self.executor.cache.nbytes, "cache_keys": keys}

    def pid(self) -> int:
        return os.getpid()

    # --- running --------------------------------------------------------------------------

    def run_prompt(self, job: Job) -> Iterator[Event]:
        """The job's events in order, then `(RESULT, JobOutcome)`."""
        handle = InterruptHandle()
        with self._lock:
            if self._free_requested:
                self.executor.cache.clear()
                self._free_requested = False
            if job.prompt_id in self._cancelled:
                self._cancelled.discard(job.prompt_id)
                handle.set()
            self._current = (job.prompt_id, handle)
        events: queue.Queue = queue.Queue()
        thread = threading.Thread(target=self._execute, args=(job, handle, events),
                                  name=f"run-{job.prompt_id}", daemon=True)
        thread.start()
        try:
            while (item := events.get()) is not _DONE:
                yield item
        finally:
            handle.set()  # a consumer that stops reading stops the run too
            thread.join()
            with self._lock:
                self._current = None

    def _execute(self, job: Job, handle: InterruptHandle, events: queue.Queue) -> None:
        throttle = PreviewThrottle(self.preview_interval)

        def listen(event: str, data: dict[str, Any]) -> None:
            if event == PREVIEW:
                if not throttle.allow():
                    return
            elif event == EXECUTED and self.shipper is not None:
                for file in self.shipper.new_files(data.get("output")):
                    events.put((FILE, file))
            events.put((event, data))

        try:
            result = self._run(job, handle, listen)
            result.worker = self.describe()
            events.put((RESULT, result))
        finally:
            events.put(_DONE)

    def _compiled(self, job: Job) -> CompiledPrompt:
        """The job's compiled prompt (compiled here if the server did not), with its files re-checked.

        The prompt was valid when queued; only what lies outside the graph (files) can have changed.
        """
        compiled = job.compiled
        if compiled is None:
            return self.executor.compile(Workflow.from_api(job.prompt), job.targets, job.extra_data)
        compiled.bind(self.executor.registry)
        result = recheck(compiled.plan, self.executor.paths, self.executor.limits, compiled.settings)
        if not result.ok:
            raise ValidationFailed(result)
        return compiled

    def _run(self, job: Job, handle: InterruptHandle, listen) -> JobOutcome:
        def failed(message: str, exc: BaseException, **extra: Any) -> JobOutcome:
            return JobOutcome.failed(ExecutionError(job.prompt_id, message, type(exc).__name__, **extra))

        try:
            compiled = self._compiled(job)
            terminal: list[Any] = []

            def record(event: str, data: dict[str, Any]) -> None:
                if event in TERMINAL_EVENTS:
                    terminal[:] = [event, data]
                listen(event, data)

            run = self.executor.run(compiled, prompt_id=job.prompt_id, interrupt=handle,
                                    extra_data=job.extra_data, listener=record)
            self._count_models(compiled, run)
        except ValidationFailed as exc:
            return failed(f"the prompt no longer validates: {(exc.result.error or {}).get('details')}", exc,
                          node_errors=exc.result.node_errors)
        except (WorkflowFormatError, KeyError) as exc:
            return failed(str(exc), exc)
        except Exception as exc:  # an engine bug must not kill the worker: record it on the job
            return failed(f"{type(exc).__name__}: {exc}", exc,
                          traceback=traceback.format_exception(type(exc), exc, exc.__traceback__))
        finally:
            self.prompts_run += 1
        keys = sorted(run.keys.reusable()) if run.keys else []
        return JobOutcome(run.status, run.outputs, run.messages,
                          tuple(terminal) or (EXECUTION_SUCCESS, {"prompt_id": job.prompt_id}), cache_keys=keys)

    def _count_models(self, compiled: CompiledPrompt, run: RunResult) -> None:
        """Remember which cache entries are loaded models, and count each time a loader ran."""
        if not compiled.models or run.keys is None:
            return
        held = set(self.executor.cache.keys())
        models = {key: model for key, model in self._models.items() if key in held}
        for use in compiled.models:
            models[run.keys.signatures[use.node_id].key] = use.key
            if run.report[use.node_id].status == "ran":
                with self._lock:
                    self.model_loads[use.key] += 1
        self._models = models  # replaced whole, never changed in place: `describe` reads it unlocked
