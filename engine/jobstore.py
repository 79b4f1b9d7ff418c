"""The durable prompt queue and history: one SQLite table of jobs in the user directory.

A job is written when it is queued and moves `pending` → `running` → `finished` in place, so a
crash (even `kill -9`) loses nothing that was acknowledged: on the next start, pending jobs are
still pending, the history is intact, and a job that was `running` goes back to the queue
(`recover`). A job whose runs keep taking the server down is not retried forever: after
`max_attempts` starts it is recorded as an error instead.

Every method is a short transaction behind one lock, so the server's event loop and the worker
thread can share one store.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal

from engine.errors import ExecutionError
from engine.events import EXECUTION_ERROR, TERMINAL_EVENTS, RunStatus

if TYPE_CHECKING:
    from engine.compile import CompiledPrompt

JobState = Literal["pending", "running", "finished"]
HISTORY_PAGE = 500  # rows read under the store's lock at a time
PENDING: JobState = "pending"
RUNNING: JobState = "running"
FINISHED: JobState = "finished"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    prompt_id   TEXT PRIMARY KEY,
    number      REAL NOT NULL,
    seq         INTEGER NOT NULL,
    state       TEXT NOT NULL,
    client_id   TEXT,
    prompt      TEXT NOT NULL,
    extra_data  TEXT NOT NULL,
    outputs_to_execute TEXT NOT NULL,
    targets     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL,
    finish_seq  INTEGER,
    status_str  TEXT,
    outputs     TEXT,
    messages    TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, number, seq);
CREATE INDEX IF NOT EXISTS jobs_history ON jobs(state, finish_seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass
class Job:
    """One queued prompt and, once finished, its history entry."""

    prompt_id: str
    number: float
    prompt: dict[str, Any]
    extra_data: dict[str, Any] = field(default_factory=dict)
    outputs_to_execute: list[str] = field(default_factory=list)
    targets: list[str] | None = None
    client_id: str | None = None
    state: JobState = PENDING
    attempts: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    status_str: RunStatus | None = None  # set once finished
    outputs: dict[str, Any] = field(default_factory=dict)
    messages: list[Any] = field(default_factory=list)
    # The prompt as compiled when it was queued (not stored: a job read back after a restart is
    # compiled again before it runs).
    compiled: CompiledPrompt | None = field(default=None, repr=False, compare=False)

    @property
    def display_number(self) -> int | float:
        """ComfyUI shows queue numbers as ints; keep fractional ones a client chose."""
        return _display_number(self.number)

    def queue_item(self) -> list[Any]:
        """ComfyUI's `[number, prompt_id, prompt, extra_data, outputs_to_execute]`."""
        return [self.display_number, self.prompt_id, self.prompt, self.extra_data, self.outputs_to_execute]


def _display_number(number: float) -> int | float:
    return int(number) if float(number).is_integer() else number


def history_entry_json(row: sqlite3.Row) -> str:
    """ComfyUI's `/history` entry of a finished job's row, as JSON text.

    Spliced from the JSON the row stores (the prompt, extra data and messages are never decoded):
    a long history is answered without building millions of objects, whose garbage collection
    would stall the whole server.
    """
    outputs = row["outputs"] or "{}"
    meta = {node_id: {"node_id": node_id, "display_node": node_id} for node_id in json.loads(outputs)}
    success = row["status_str"] == "success"
    item = ", ".join([json.dumps(_display_number(row["number"])), json.dumps(row["prompt_id"]), row["prompt"],
                      row["extra_data"], row["outputs_to_execute"]])
    status = (f'{{"status_str": {json.dumps("success" if success else "error")}, '
              f'"completed": {json.dumps(success)}, "messages": {row["messages"] or "[]"}}}')
    return f'{{"prompt": [{item}], "outputs": {outputs}, "status": {status}, "meta": {json.dumps(meta)}}}'


def _storable_messages(messages: Iterable[Any]) -> list[Any]:
    """The messages of a result that could not be stored, less its terminal event and what JSON cannot
    carry: the history keeps what it can, then the error that replaces the terminal event."""
    kept = []
    for message in messages:
        try:
            json.dumps(message, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            continue
        if not (isinstance(message, (list, tuple)) and message and message[0] in TERMINAL_EVENTS):
            kept.append(message)
    return kept


def _job(row: sqlite3.Row) -> Job:
    return Job(
        prompt_id=row["prompt_id"], number=row["number"], prompt=json.loads(row["prompt"]),
        extra_data=json.loads(row["extra_data"]), outputs_to_execute=json.loads(row["outputs_to_execute"]),
        targets=json.loads(row["targets"]) if row["targets"] else None, client_id=row["client_id"],
        state=row["state"], attempts=row["attempts"], created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"], status_str=row["status_str"],
        outputs=json.loads(row["outputs"]) if row["outputs"] else {},
        messages=json.loads(row["messages"]) if row["messages"] else [],
    )


class JobStore:
    """Queue and history in one SQLite file; `max_history` finished jobs are kept (oldest dropped)."""

    def __init__(self, path: Path | str, max_history: int = 10_000, max_attempts: int = 3) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_history = max_history
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL + FULL: a committed transaction survives the process being killed (and power loss).
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self):
        return _Transaction(self)

    def _next(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        value = (row["value"] if row else 0) + 1
        self._db.execute("INSERT OR REPLACE INTO counters(name, value) VALUES (?, ?)", (name, value))
        return value

    # --- queue ---------------------------------------------------------------------------

    def add(self, job: Job, number: float | None = None, front: bool = False) -> Job:
        """Queue `job`: `number` orders it (ComfyUI's field); without one it goes last, or first with `front`.

        Raises KeyError when a job with the same prompt_id exists.
        """
        with self._tx():
            if self._db.execute("SELECT 1 FROM jobs WHERE prompt_id = ?", (job.prompt_id,)).fetchone():
                raise KeyError(job.prompt_id)
            seq = self._next("seq")
            if number is None:
                number = self._next("number")
                if front:
                    low = self._db.execute("SELECT MIN(number) AS n FROM jobs WHERE state = ?",
                                           (PENDING,)).fetchone()["n"]
                    number = min(-number, (low if low is not None else 0) - 1)
            job.number, job.state, job.created_at = float(number), PENDING, time.time()
            self._db.execute(
                "INSERT INTO jobs(prompt_id, number, seq, state, client_id, prompt, extra_data,"
                " outputs_to_execute, targets, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (job.prompt_id, job.number, seq, PENDING, job.client_id, json.dumps(job.prompt),
                 json.dumps(job.extra_data), json.dumps(job.outputs_to_execute),
                 json.dumps(job.targets) if job.targets is not None else None, job.created_at))
        return job

    def claim_next(self) -> Job | None:
        """Mark the first pending job (lowest number) running and return it."""
        with self._tx():
            row = self._db.execute("SELECT * FROM jobs WHERE state = ? ORDER BY number, seq LIMIT 1",
                                   (PENDING,)).fetchone()
            if row is None:
                return None
            now = time.time()
            self._db.execute("UPDATE jobs SET state = ?, started_at = ?, attempts = attempts + 1 WHERE prompt_id = ?",
                             (RUNNING, now, row["prompt_id"]))
        job = _job(row)
        job.state, job.started_at, job.attempts = RUNNING, now, job.attempts + 1
        return job

    def claim(self, prompt_id: str) -> Job | None:
        """Mark this pending job running and return it; None if it is no longer pending (deleted, taken)."""
        with self._tx():
            now = time.time()
            updated = self._db.execute("UPDATE jobs SET state = ?, started_at = ?, attempts = attempts + 1 "
                                       "WHERE prompt_id = ? AND state = ?", (RUNNING, now, prompt_id, PENDING))
            if updated.rowcount == 0:
                return None
            row = self._db.execute("SELECT * FROM jobs WHERE prompt_id = ?", (prompt_id,)).fetchone()
        return _job(row)

    def pending_heads(self, per_client: int) -> list[Job]:
        """The first `per_client` pending jobs of each client, in queue order: what a fair dispatcher chooses from."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY number, seq) AS rank "
                "FROM jobs WHERE state = ?) WHERE rank <= ? ORDER BY number, seq", (PENDING, per_client)).fetchall()
        return [_job(r) for r in rows]

    def requeue(self, prompt_id: str, count_attempt: bool = False) -> None:
        """Put a running job back at its place in the queue (a clean shutdown stopped it)."""
        with self._tx():
            self._db.execute("UPDATE jobs SET state = ?, started_at = NULL, attempts = attempts - ? "
                             "WHERE prompt_id = ? AND state = ?",
                             (PENDING, 0 if count_attempt else 1, prompt_id, RUNNING))

    def finish(self, prompt_id: str, status_str: RunStatus, outputs: dict[str, Any],
               messages: list[Any]) -> dict[str, Any] | None:
        """Record a job's result: it leaves the queue and enters the history in one transaction.

        A result that cannot be written as JSON never leaves its job running: the job is recorded as
        an error instead, and that error's `execution_error` data is returned (None when stored as given).
        """
        error = None
        try:
            outputs_json, messages_json = json.dumps(outputs, allow_nan=False), json.dumps(messages, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            status_str, outputs_json, error = "error", "{}", ExecutionError(
                prompt_id, f"the prompt's results could not be stored as JSON ({exc}); they were dropped",
                type(exc).__name__).data()
            messages_json = json.dumps([*_storable_messages(messages), [EXECUTION_ERROR, error]])
        with self._tx():
            self._db.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, finish_seq = ?, status_str = ?, outputs = ?, "
                "messages = ? WHERE prompt_id = ?",
                (FINISHED, time.time(), self._next("finish_seq"), status_str, outputs_json, messages_json, prompt_id))
            self._trim_history()
        return error

    def recover(self) -> tuple[list[str], list[str]]:
        """After an unclean stop: re-queue jobs left `running`, or fail those started `max_attempts` times.

        Returns (re-queued ids, failed ids).
        """
        requeued, failed = [], []
        with self._tx():
            rows = self._db.execute("SELECT prompt_id, attempts FROM jobs WHERE state = ?", (RUNNING,)).fetchall()
            for row in rows:
                if row["attempts"] >= self.max_attempts:
                    failed.append(row["prompt_id"])
                else:
                    requeued.append(row["prompt_id"])
                    self._db.execute("UPDATE jobs SET state = ?, started_at = NULL WHERE prompt_id = ?",
                                     (PENDING, row["prompt_id"]))
        for prompt_id in failed:
            self.give_up(prompt_id, f"the server stopped {self.max_attempts} times while running this prompt; "
                                    "it was not retried again", "ServerRestart")
        return requeued, failed

    def give_up(self, prompt_id: str, message: str, exception_type: str) -> dict[str, Any]:
        """Record a job that will not be retried as an error; returns its `execution_error` data."""
        data = ExecutionError(prompt_id, message, exception_type).data()
        self.finish(prompt_id, "error", {}, [[EXECUTION_ERROR, data]])
        return data

    def _delete(self, state: str, prompt_ids: Iterable[str] | None) -> int:
        """Delete the jobs in `state` (only those in `prompt_ids`, when given); returns how many."""
        with self._tx():
            if prompt_ids is None:
                return self._db.execute("DELETE FROM jobs WHERE state = ?", (state,)).rowcount
            return sum(self._db.execute("DELETE FROM jobs WHERE prompt_id = ? AND state = ?",
                                        (pid, state)).rowcount for pid in list(prompt_ids))

    def delete_pending(self, prompt_ids: Iterable[str]) -> int:
        return self._delete(PENDING, prompt_ids)

    def clear_pending(self) -> int:
        return self._delete(PENDING, None)

    def queue(self) -> tuple[list[Job], list[Job]]:
        """(running, pending), the pending ones in execution order."""
        with self._lock:
            running = self._db.execute("SELECT * FROM jobs WHERE state = ? ORDER BY started_at",
                                       (RUNNING,)).fetchall()
            pending = self._db.execute("SELECT * FROM jobs WHERE state = ? ORDER BY number, seq",
                                       (PENDING,)).fetchall()
        return [_job(r) for r in running], [_job(r) for r in pending]

    def remaining(self) -> int:
        """Pending plus running jobs: ComfyUI's `queue_remaining` (an index look-up, not a scan)."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) AS n FROM jobs WHERE state IN (?, ?)",
                                    (PENDING, RUNNING)).fetchone()["n"]

    def position(self, prompt_id: str) -> int | None:
        """How many pending jobs run before this pending one (0: next), None if it is not pending."""
        with self._lock:
            row = self._db.execute("SELECT number, seq FROM jobs WHERE prompt_id = ? AND state = ?",
                                   (prompt_id, PENDING)).fetchone()
            if row is None:
                return None
            return self._db.execute(
                "SELECT COUNT(*) AS n FROM jobs WHERE state = ? AND (number < ? OR (number = ? AND seq < ?))",
                (PENDING, row["number"], row["number"], row["seq"])).fetchone()["n"]

    # --- jobs and history ----------------------------------------------------------------

    def get(self, prompt_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE prompt_id = ?", (prompt_id,)).fetchone()
        return _job(row) if row else None

    def jobs(self, state: str | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
        """Jobs newest first, optionally of one state."""
        query, args = "SELECT * FROM jobs", []
        if state is not None:
            query, args = query + " WHERE state = ?", [state]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        return [_job(r) for r in rows]

    def history(self, max_items: int | None = None, offset: int | None = None) -> list[Job]:
        """Finished jobs, oldest first. Like ComfyUI: `max_items` alone gives the latest ones."""
        return [_job(row) for row in self._history_rows(max_items, offset)]

    def history_json(self, max_items: int | None = None, offset: int | None = None) -> str:
        """The `/history` answer (`{prompt_id: entry}`) as JSON text; see `history_entry_json`."""
        return "{" + ", ".join(f"{json.dumps(row['prompt_id'])}: {history_entry_json(row)}"
                               for row in self._history_rows(max_items, offset)) + "}"

    def history_item_json(self, prompt_id: str) -> str:
        """`/history/{prompt_id}`: `{prompt_id: entry}` for a finished job, else `{}`."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE prompt_id = ? AND state = ?",
                                   (prompt_id, FINISHED)).fetchone()
        return "{" + (f"{json.dumps(prompt_id)}: {history_entry_json(row)}" if row else "") + "}"

    def _history_rows(self, max_items: int | None, offset: int | None) -> Iterator[sqlite3.Row]:
        """Finished rows in history order, read in pages of `HISTORY_PAGE`, each under the lock on
        its own, so a long history never holds the store (and whoever waits on it, such as
        `remaining`) for its whole length."""
        with self._lock:
            total = self._db.execute("SELECT COUNT(*) AS n FROM jobs WHERE state = ?", (FINISHED,)).fetchone()["n"]
            if offset is None or offset < 0:
                offset = max(0, total - max_items) if max_items is not None else 0
            first = self._db.execute("SELECT finish_seq FROM jobs WHERE state = ? ORDER BY finish_seq LIMIT 1 "
                                     "OFFSET ?", (FINISHED, offset)).fetchone()
        left = max_items if max_items is not None else total
        after = first["finish_seq"] - 1 if first is not None else None
        while after is not None and left > 0:
            page = min(HISTORY_PAGE, left)
            with self._lock:
                rows = self._db.execute(
                    "SELECT * FROM jobs WHERE state = ? AND finish_seq > ? ORDER BY finish_seq LIMIT ?",
                    (FINISHED, after, page)).fetchall()
            yield from rows
            left -= len(rows)
            after = rows[-1]["finish_seq"] if len(rows) == page else None

    def delete_history(self, prompt_ids: Iterable[str]) -> int:
        return self._delete(FINISHED, prompt_ids)

    def clear_history(self) -> int:
        return self._delete(FINISHED, None)

    def _trim_history(self) -> None:
        self._db.execute(
            "DELETE FROM jobs WHERE state = ? AND finish_seq <= (SELECT finish_seq FROM jobs WHERE state = ? "
            "ORDER BY finish_seq DESC LIMIT 1 OFFSET ?)", (FINISHED, FINISHED, self.max_history))


class _Transaction:
    """`with store._tx():` — the store's lock plus BEGIN IMMEDIATE … COMMIT (ROLLBACK on error)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        self.store._lock.acquire()
        try:
            self.store._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store._lock.release()
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.store._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.store._lock.release()
