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

from engine.backends.base import FILE, RESULT, Event
from engine.backends.dispatch import CHECKPOINT_INPUTS
from engine.backends.outputs import OutputShipper
from engine.context import InterruptHandle
from engine.events import EXECUTED, EXECUTION_ERROR, EXECUTION_SUCCESS, PREVIEW, TERMINAL_EVENTS
from engine.execute import Executor, RunResult
from engine.jobstore import Job
from engine.validate import Plan
from engine.workflow import Workflow, WorkflowFormatError

_DONE = object()


def failure(prompt_id: str, message: str, exception_type: str, tb: list[str] | None = None,
            node_errors: dict[str, Any] | None = None) -> dict[str, Any]:
    """A RESULT payload for a prompt that failed outside any node (and its `execution_error` data)."""
    data = {"prompt_id": prompt_id, "node_id": None, "node_type": None, "exception_message": message,
            "exception_type": exception_type, "traceback": tb or [], "executed": [], "current_inputs": {},
            "timestamp": int(time.time() * 1000)}
    if node_errors:
        data["node_errors"] = node_errors
    return {"status": "error", "outputs": {}, "messages": [[EXECUTION_ERROR, data]],
            "terminal": [EXECUTION_ERROR, data]}


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
        self.model_loads: Counter[str] = Counter()   # checkpoint name → times a loader ran here
        self._models: dict[str, str] = {}              # cache key of a loader's outputs → checkpoint name
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
        checkpoints = sorted({name for key, name in self._models.items() if key in held})
        with self._lock:  # the prompt's thread counts loads and sets the current prompt under it
            running = self._current[0] if self._current else None
            model_loads = dict(self.model_loads)
        return {"id": self.worker_id, "host": socket.gethostname(), "pid": os.getpid(),
                "device": device_description(), "prompt_id": running, "prompts_run": self.prompts_run,
                "checkpoints": checkpoints, "model_loads": model_loads, "cache_entries": len(keys),
                "cache_bytes": self.executor.cache.nbytes, "cache_keys": keys}

    def pid(self) -> int:
        return os.getpid()

    # --- running --------------------------------------------------------------------------

    def run_prompt(self, job: Job) -> Iterator[Event]:
        """The job's events in order, then `(RESULT, {status, outputs, messages, terminal, worker})`."""
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
            result["worker"] = self.describe()
            events.put((RESULT, result))
        finally:
            events.put(_DONE)

    def _run(self, job: Job, handle: InterruptHandle, listen) -> dict[str, Any]:
        executor = self.executor
        try:
            workflow = Workflow.from_api(job.prompt)
            validation = executor.validate(workflow, job.targets)
            if not validation.ok:  # valid when queued; a file may have gone since
                return failure(job.prompt_id, "the prompt no longer validates: "
                               f"{(validation.error or {}).get('details')}", "ValidationFailed",
                               node_errors=validation.node_errors)
            terminal: list[Any] = []

            def record(event: str, data: dict[str, Any]) -> None:
                if event in TERMINAL_EVENTS:
                    terminal[:] = [event, data]
                listen(event, data)

            run = executor.run_plan(validation.plan, prompt_id=job.prompt_id, interrupt=handle,
                                    extra_data=job.extra_data, listener=record)
            self._count_models(validation.plan, run, job.extra_data)
        except WorkflowFormatError as exc:
            return failure(job.prompt_id, str(exc), "WorkflowFormatError")
        except Exception as exc:  # an engine bug must not kill the worker: record it on the job
            return failure(job.prompt_id, f"{type(exc).__name__}: {exc}", type(exc).__name__,
                           tb=traceback.format_exception(type(exc), exc, exc.__traceback__))
        finally:
            self.prompts_run += 1
        return {"status": run.status, "outputs": run.outputs, "messages": run.messages,
                "terminal": terminal or [EXECUTION_SUCCESS, {"prompt_id": job.prompt_id}]}

    def _count_models(self, plan: Plan, run: RunResult, extra_data: dict[str, Any]) -> None:
        """Remember which cache entries are loaded checkpoints, and count each time a loader ran."""
        loaders = [n for n in plan.order if any(k in plan.constants[n] for k in CHECKPOINT_INPUTS)]
        if not loaders:
            return
        signatures, _ = self.executor.plan_signatures(plan, self.executor.run_settings(extra_data))
        held = set(self.executor.cache.keys())
        models = {key: name for key, name in self._models.items() if key in held}
        for node_id in loaders:
            name = next(str(plan.constants[node_id][k]) for k in CHECKPOINT_INPUTS if k in plan.constants[node_id])
            models[signatures[node_id].key] = name
            if run.report[node_id].status == "ran":
                with self._lock:
                    self.model_loads[name] += 1
        self._models = models  # replaced whole, never changed in place: `describe` reads it unlocked
