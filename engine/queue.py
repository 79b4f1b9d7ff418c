"""The prompt queue and its dispatcher: prompts from the durable store, run on a backend's workers.

The store (`JobStore`) is the single source of truth; the dispatcher thread claims pending jobs
from it in fair order (engine.backends.dispatch) and hands each to an idle worker, one prompt per
worker, each run consumed by a thread of its own. Events go out through `publish(event, data,
client_id)`; `client_id=None` means every client. Ordering guarantees clients rely on:

- a worker's events leave in the order it produced them;
- the history entry is written *before* the terminal event (`execution_success`, `_error` or
  `_interrupted`) and before the final `executing {node: null}` are published, so a client that
  reacts to either by reading the history finds the entry (ComfyUI gets this order wrong);
- `status` (the queue length) goes to every client whenever the queue changes.

A worker that dies mid-prompt puts the prompt back in the queue (its clients get
`execution_restarting`); after `store.max_attempts` starts it is recorded as an error. Either
way the history gets exactly one entry. The worker is used again once it answers (restarted).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import traceback
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable

from engine.backends.base import RESULT, Backend, Holdings, JobOutcome, Worker, WorkerLost
from engine.backends.dispatch import Candidate, Chooser, compiled_models
from engine.backends.local import LocalBackend
from engine.compile import CompiledPrompt
from engine.errors import ExecutionError
from engine.events import EXECUTING, EXECUTION_ERROR, EXECUTION_RESTARTING, STATUS, TERMINAL_EVENTS
from engine.execute import Executor
from engine.jobstore import Job, JobStore
from engine.workflow import Workflow

Publish = Callable[[str, dict[str, Any], "str | None"], None]
PENDING_PER_CLIENT = 32  # how deep into each client's queue the dispatcher looks for affinity
# Seconds between tries of writing a result into the history (a busy or briefly failing database).
RECORD_RETRY_DELAYS = (0.05, 0.5, 2.0)


def _no_publish(event: str, data: dict[str, Any], client_id: str | None) -> None:
    return None


@dataclass
class _Slot:
    """One worker as the dispatcher tracks it."""

    worker: Worker
    job: Job | None = None
    node: str | None = None
    alive: bool = True


class PromptQueue:
    """A durable queue (`JobStore`) plus the dispatcher that runs it on a backend's workers.

    `backend` may be an Executor: one in-process worker (the default server's setup). `validator`
    (an executor on the server) compiles the jobs that were queued without their compiled prompt
    (after a restart), so the dispatcher knows their models and cache keys.
    """

    def __init__(self, backend: Backend | Executor, store: JobStore, publish: Publish = _no_publish,
                 preview_interval: float = 0.1, validator: Executor | None = None, affinity: bool = True) -> None:
        if isinstance(backend, Executor):
            validator = validator or backend
            backend = LocalBackend(backend, preview_interval)
        self.backend = backend
        self.store = store
        self.publish = publish
        self.validator = validator
        self.chooser = Chooser(affinity=affinity, models_of=self._models_of)
        # Compiled prompts of pending jobs, by prompt id; None where compiling failed (the worker reports it).
        self._compiled: dict[str, CompiledPrompt | None] = {}
        self._wake = threading.Condition()
        self._stopping = False
        self._slots: list[_Slot] = []
        self._threads: list[threading.Thread] = []
        self._changes = 0  # bumped by every event the dispatcher must react to

    # --- control -------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from an unclean stop, start the workers, then the dispatcher."""
        self.store.recover()
        self._stopping = False
        self._slots = [_Slot(worker) for worker in self.backend.start()]
        self._spawn(self._dispatch, "prompt-dispatcher")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop dispatching; prompts running go back to the queue for the next start."""
        with self._wake:
            self._stopping = True
            for slot in self._slots:
                if slot.job is not None:
                    slot.worker.interrupt(slot.job.prompt_id)
            self._wake.notify_all()
        # The dispatcher first: once it has returned it starts no more runs, so joining the rest is final.
        while self._threads:
            self._threads.pop(0).join(timeout)
        self.backend.stop()

    def submit(self, job: Job, number: float | None = None, front: bool = False) -> Job:
        """Queue a validated job (with its compiled prompt, if any); KeyError if its prompt_id is taken."""
        self.store.add(job, number, front)
        if job.compiled is not None:
            with self._wake:
                self._compiled[job.prompt_id] = job.compiled
        self.notify_changed()
        self._notify()
        return job

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Stop a running prompt: `prompt_id`, or every running one when None. True if one was asked to stop."""
        with self._wake:
            targets = [(s.worker, s.job.prompt_id) for s in self._slots
                       if s.job is not None and prompt_id in (None, s.job.prompt_id)]
        for worker, running in targets:
            worker.interrupt(running)
        return bool(targets)

    def delete(self, prompt_ids: list[str]) -> int:
        removed = self.store.delete_pending(prompt_ids)
        with self._wake:
            for prompt_id in prompt_ids:
                self._compiled.pop(prompt_id, None)
        if removed:
            self.notify_changed()
        return removed

    def clear(self) -> int:
        removed = self.store.clear_pending()
        with self._wake:
            self._compiled.clear()
        if removed:
            self.notify_changed()
        return removed

    def request_free(self, unload_models: bool = False, free_memory: bool = False) -> None:
        """Drop every worker's cached outputs (models included) before its next prompt."""
        if unload_models or free_memory:
            for slot in self._slots:
                slot.worker.free(True)

    # --- state ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.store.remaining()}}

    def notify_changed(self) -> None:
        self.publish(STATUS, {"status": self.status()}, None)

    def running_jobs(self) -> list[dict[str, Any]]:
        """`{prompt_id, client_id, node, worker}` of each running prompt (node: the one executing)."""
        with self._wake:
            return [{"prompt_id": s.job.prompt_id, "client_id": s.job.client_id, "node": s.node,
                     "worker": s.worker.id} for s in self._slots if s.job is not None]

    def workers(self) -> list[dict[str, Any]]:
        """Each worker's last report (device, what it holds) plus its state here; cache keys left out."""
        listing = []
        with self._wake:
            for slot in self._slots:
                entry = {k: v for k, v in slot.worker.description.items() if k != "cache_keys"}
                entry.update(id=slot.worker.id, backend=self.backend.name,
                             state="lost" if not slot.alive else "busy" if slot.job else "idle",
                             prompt_id=slot.job.prompt_id if slot.job else None, node=slot.node)
                listing.append(entry)
        return listing

    # --- dispatching ---------------------------------------------------------------------

    def _changed_since(self, seen: int) -> bool:
        return self._changes != seen or self._stopping

    def _notify(self) -> None:
        with self._wake:  # reentrant: callers may hold it already
            self._changes += 1
            self._wake.notify_all()

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._wake:  # started under the lock, so stop() never joins a thread not yet started
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _dispatch(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                seen = self._changes  # a change after this look (a submit, a run ending) means look again
                idle = [s for s in self._slots if s.alive and s.job is None]
                # a busy worker will hold what its running prompt loads, though it has not reported it yet
                busy = [replace(s.worker.holdings, models=s.worker.holdings.models | compiled_models(s.job))
                        for s in self._slots if s.alive and s.job]
            if not idle or not self._assign(idle, busy):
                with self._wake:
                    self._wake.wait_for(partial(self._changed_since, seen), 1.0)

    def _assign(self, idle: list[_Slot], busy: list[Holdings]) -> bool:
        """Start one pending job on one idle worker; False when there is nothing to start."""
        pending = self.store.pending_heads(PENDING_PER_CLIENT)
        choice = self.chooser.choose(pending, [Candidate(s, s.worker.holdings) for s in idle], busy, self._cache_keys)
        if choice is None:
            return False
        job, candidate = choice
        claimed = self.store.claim(job.prompt_id)
        if claimed is None:  # deleted since it was read: look again
            return True
        slot = candidate.key
        with self._wake:
            if self._stopping:
                self.store.requeue(claimed.prompt_id)
                return False
            claimed.compiled = self._compiled.pop(claimed.prompt_id, None)
            slot.job, slot.node = claimed, None
        self.notify_changed()
        self._spawn(self._run, f"run-{slot.worker.id}", slot, claimed)
        return True

    def _compiled_for(self, job: Job) -> CompiledPrompt | None:
        """The job's compiled prompt: from `submit`, or compiled here once (a job queued before a restart)."""
        with self._wake:
            if job.prompt_id in self._compiled:
                return self._compiled[job.prompt_id]
        compiled = job.compiled
        if compiled is None and self.validator is not None:
            try:
                compiled = self.validator.compile(Workflow.from_api(job.prompt), job.targets, job.extra_data)
            except Exception:  # the worker compiles it again and reports why it fails
                compiled = None
        with self._wake:
            self._compiled[job.prompt_id] = compiled
        return compiled

    def _models_of(self, job: Job) -> frozenset[str]:
        compiled = job.compiled or self._compiled_for(job)
        return compiled.model_keys if compiled is not None else frozenset()

    def _cache_keys(self, job: Job) -> set[str]:
        """The cache keys of the job's graph (computed once: the worker reuses them); empty if unknown."""
        compiled = self._compiled_for(job)
        if compiled is None or self.validator is None:
            return set()
        try:
            return compiled.keys(self.validator.paths).reusable()
        except Exception:  # affinity is a preference: never let it stop a dispatch
            return set()

    # --- one run -------------------------------------------------------------------------

    def _run(self, slot: _Slot, job: Job) -> None:
        try:
            result = self._stream(slot, job)
        except WorkerLost as exc:
            result = None
            self._lost(slot, job, exc)
        except Exception as exc:  # a bug on the server's side of the stream: record it, keep dispatching
            result = JobOutcome.failed(ExecutionError(
                job.prompt_id, f"{type(exc).__name__}: {exc}", type(exc).__name__,
                traceback=traceback.format_exception(type(exc), exc, exc.__traceback__)))
        try:
            if result is not None and self._stopping and result.status == "interrupted":
                self.store.requeue(job.prompt_id)
            elif result is not None:
                self.publish(*self._record(job, result), job.client_id)
                self.publish(EXECUTING, {"node": None, "prompt_id": job.prompt_id}, job.client_id)
        finally:
            with self._wake:
                slot.job, slot.node = None, None
                self._notify()
            self.notify_changed()

    def _record(self, job: Job, result: JobOutcome) -> tuple[str, dict[str, Any]]:
        """Write the result into the history and return the terminal event to publish. A database that
        fails is tried again a few times; if it still fails, the client is told that the result was not
        recorded (the prompt stays `running` in the store, and a restart's recovery runs it again)."""
        for delay in RECORD_RETRY_DELAYS:
            try:
                return self._finish(job, result)
            except (sqlite3.Error, OSError):
                time.sleep(delay)
        try:
            return self._finish(job, result)
        except (sqlite3.Error, OSError) as exc:
            return EXECUTION_ERROR, ExecutionError(
                job.prompt_id, f"the prompt ran ({result.status}) but its result could not be written to the "
                f"history ({exc}); it stays queued as running until the server restarts", type(exc).__name__).data()

    def _finish(self, job: Job, result: JobOutcome) -> tuple[str, dict[str, Any]]:
        stored_error = self.store.finish(job.prompt_id, result.status, result.outputs, result.messages)
        return (EXECUTION_ERROR, stored_error) if stored_error is not None else result.terminal

    def _stream(self, slot: _Slot, job: Job) -> JobOutcome:
        """Forward the run's events to its client and return its RESULT; terminal events wait for the history."""
        started = False
        for event, data in slot.worker.run(job):
            started = True
            if event == RESULT:
                slot.worker.description = data.worker or slot.worker.description
                return data
            if event in TERMINAL_EVENTS:
                continue  # RESULT carries it; it is sent once the history entry is written
            if event == EXECUTING:
                slot.node = data.get("node")
            self.publish(event, data, job.client_id)
        raise WorkerLost(f"worker {slot.worker.id} ended the stream without a result", started)

    def _lost(self, slot: _Slot, job: Job, exc: WorkerLost) -> None:
        """Re-queue (or, after too many starts, fail) the prompt of a worker that died; revive the slot."""
        with self._wake:
            slot.alive = False
        attempts = (self.store.get(job.prompt_id) or job).attempts
        if self._stopping or not exc.started:
            self.store.requeue(job.prompt_id)
        elif attempts >= self.store.max_attempts:
            data = self.store.give_up(job.prompt_id, f"the worker running this prompt died {attempts} times "
                                      f"(last: {exc}); it was not retried again", "WorkerLost")
            self.publish(EXECUTION_ERROR, data, job.client_id)
            self.publish(EXECUTING, {"node": None, "prompt_id": job.prompt_id}, job.client_id)
        else:
            self.store.requeue(job.prompt_id, count_attempt=True)
            self.publish(EXECUTION_RESTARTING, {"prompt_id": job.prompt_id, "worker": slot.worker.id,
                                                "attempt": attempts, "reason": str(exc)}, job.client_id)
        self._spawn(self._revive, f"revive-{slot.worker.id}", slot)

    def _revive(self, slot: _Slot) -> None:
        while not self._stopping:
            if slot.worker.wait_alive(5.0):
                with self._wake:
                    slot.alive = True
                    self._notify()
                return
