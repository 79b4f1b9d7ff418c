"""The prompt queue and its worker: prompts run one at a time, in priority order, in a thread.

The executor is synchronous, so the worker runs it in its own thread while whoever owns the
queue (the server's event loop) keeps serving. Events go out through `publish(event, data,
client_id)`; `client_id=None` means every client. Ordering guarantees clients rely on:

- the history entry is written *before* the terminal event (`execution_success`, `_error` or
  `_interrupted`) and before the final `executing {node: null}` are published, so a client that
  reacts to either by reading the history finds the entry (ComfyUI gets this order wrong);
- `status` (the queue length) goes to every client whenever the queue changes.

Preview images are throttled here, at the source, to at most one per `preview_interval` seconds
per prompt, so a fast sampler cannot flood the clients (or the thread boundary) with images.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable

from engine.context import InterruptHandle
from engine.events import (EXECUTING, EXECUTION_ERROR, EXECUTION_INTERRUPTED, EXECUTION_SUCCESS, PREVIEW)
from engine.execute import Executor
from engine.jobstore import Job, JobStore
from engine.workflow import Workflow, WorkflowFormatError

Publish = Callable[[str, dict[str, Any], "str | None"], None]
TERMINAL_EVENTS = (EXECUTION_SUCCESS, EXECUTION_ERROR, EXECUTION_INTERRUPTED)
STATUS = "status"


def _no_publish(event: str, data: dict[str, Any], client_id: str | None) -> None:
    return None


class PromptQueue:
    """A durable queue (`JobStore`) plus the single worker thread that executes it."""

    def __init__(self, executor: Executor, store: JobStore, publish: Publish = _no_publish,
                 preview_interval: float = 0.1) -> None:
        self.executor = executor
        self.store = store
        self.publish = publish
        self.preview_interval = preview_interval
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._current: tuple[Job, InterruptHandle] | None = None
        self._current_node: str | None = None
        self._free_requested: dict[str, bool] = {}

    # --- control -------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from an unclean stop, then start the worker thread."""
        self.store.recover()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="prompt-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker; a prompt it was running goes back to the queue for the next start."""
        with self._wake:
            self._stopping = True
            if self._current is not None:
                self._current[1].set()
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, job: Job, number: float | None = None, front: bool = False) -> Job:
        """Queue a validated job; KeyError if its prompt_id is taken."""
        self.store.add(job, number, front)
        self.notify_changed()
        with self._wake:
            self._wake.notify_all()
        return job

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Stop the running prompt (only if it is `prompt_id`, when given). True if one was asked to stop."""
        with self._wake:
            if self._current is None:
                return False
            job, handle = self._current
            if prompt_id is not None and job.prompt_id != prompt_id:
                return False
            handle.set()
            return True

    def delete(self, prompt_ids: list[str]) -> int:
        removed = self.store.delete_pending(prompt_ids)
        if removed:
            self.notify_changed()
        return removed

    def clear(self) -> int:
        removed = self.store.clear_pending()
        if removed:
            self.notify_changed()
        return removed

    def request_free(self, unload_models: bool = False, free_memory: bool = False) -> None:
        """Drop cached outputs (models included) before the next prompt: the worker owns the cache."""
        with self._wake:
            self._free_requested["unload_models"] = self._free_requested.get("unload_models", False) or unload_models
            self._free_requested["free_memory"] = self._free_requested.get("free_memory", False) or free_memory
            self._wake.notify_all()

    # --- state ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.store.remaining()}}

    def notify_changed(self) -> None:
        self.publish(STATUS, {"status": self.status()}, None)

    @property
    def running(self) -> dict[str, Any] | None:
        """`{prompt_id, client_id, node}` of the running prompt (node: the one executing), or None."""
        current = self._current
        if current is None:
            return None
        return {"prompt_id": current[0].prompt_id, "client_id": current[0].client_id, "node": self._current_node}

    # --- the worker ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                self._apply_free()
            job = self.store.claim_next()
            if job is None:
                with self._wake:
                    if not self._stopping:
                        self._wake.wait(1.0)
                continue
            self._run(job)

    def _apply_free(self) -> None:
        if self._free_requested:
            if self._free_requested.get("unload_models") or self._free_requested.get("free_memory"):
                self.executor.cache.clear()
            self._free_requested = {}

    def _run(self, job: Job) -> None:
        handle = InterruptHandle()
        with self._wake:
            self._current = (job, handle)
            if self._stopping:
                handle.set()
        self.notify_changed()
        run = _JobRun(self, job, handle)
        try:
            status, outputs, messages, terminal = run.execute()
            if self._stopping and status == "interrupted":
                self.store.requeue(job.prompt_id)
                return
            self.store.finish(job.prompt_id, status, outputs, messages)
            run.send(*terminal)
            run.send(EXECUTING, {"node": None, "prompt_id": job.prompt_id})
        finally:
            with self._wake:
                self._current = None
                self._current_node = None
            self.notify_changed()


class _JobRun:
    """One job's execution: validation, the run, and the events it produces."""

    def __init__(self, queue: PromptQueue, job: Job, handle: InterruptHandle) -> None:
        self.queue = queue
        self.job = job
        self.handle = handle
        self.held: list[tuple[str, dict[str, Any]]] = []
        self.last_preview = 0.0

    def send(self, event: str, data: dict[str, Any]) -> None:
        self.queue.publish(event, data, self.job.client_id)

    def listen(self, event: str, data: dict[str, Any]) -> None:
        """The executor's listener: terminal events wait until the history is written."""
        if event in TERMINAL_EVENTS:
            self.held.append((event, data))
            return
        if event == PREVIEW:
            now = time.monotonic()
            if now - self.last_preview < self.queue.preview_interval:
                return
            self.last_preview = now
        elif event == EXECUTING:
            self.queue._current_node = data.get("node")
        self.send(event, data)

    def execute(self) -> tuple[str, dict[str, Any], list[Any], tuple[str, dict[str, Any]]]:
        """(status_str, outputs, history messages, terminal event) for this job."""
        executor = self.queue.executor
        try:
            workflow = Workflow.from_api(self.job.prompt)
            result = executor.validate(workflow, self.job.targets)
            if not result.ok:  # valid when queued; a file may have gone since
                return self.failure(f"the prompt no longer validates: {(result.error or {}).get('details')}",
                                    "ValidationFailed", node_errors=result.node_errors)
            run = executor.run_plan(result.plan, prompt_id=self.job.prompt_id, listener=self.listen,
                                    interrupt=self.handle, extra_data=self.job.extra_data)
        except WorkflowFormatError as exc:
            return self.failure(str(exc), "WorkflowFormatError")
        except Exception as exc:  # an engine bug must not kill the worker: record it on the job
            return self.failure(f"{type(exc).__name__}: {exc}", type(exc).__name__,
                                tb=traceback.format_exception(type(exc), exc, exc.__traceback__))
        terminal = self.held[-1] if self.held else (EXECUTION_SUCCESS, {"prompt_id": self.job.prompt_id})
        return run.status, run.outputs, run.messages, terminal

    def failure(self, message: str, exception_type: str, tb: list[str] | None = None,
                node_errors: dict[str, Any] | None = None) -> tuple[str, dict, list, tuple[str, dict]]:
        data = {"prompt_id": self.job.prompt_id, "node_id": None, "node_type": None,
                "exception_message": message, "exception_type": exception_type, "traceback": tb or [],
                "executed": [], "current_inputs": {}, "timestamp": int(time.time() * 1000)}
        if node_errors:
            data["node_errors"] = node_errors
        return "error", {}, [[EXECUTION_ERROR, data]], (EXECUTION_ERROR, data)
