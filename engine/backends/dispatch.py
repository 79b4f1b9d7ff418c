"""Which pending prompt runs next, and on which idle worker.

Order is fair across clients: clients take turns (the one served longest ago first), and each
client's own prompts keep their queue order (priority `number`, then arrival). The worker for a
prompt is, in this order of preference: an idle worker that already holds its models, the
idle worker whose cache covers most of its graph, any idle worker. With affinity on, a prompt
whose models only a busy worker holds may let a later prompt (in fair order) take an idle
worker that holds *its* models, so models are not loaded twice; a prompt is passed over at
most `max_passes` times, so none waits forever. A prompt's models are what its compiled form
says its nodes load (inputs declared with `loads`), so a node pack's own loaders count too.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from engine.backends.base import Holdings
from engine.jobstore import Job

ModelsOf = Callable[[Job], frozenset[str]]


def compiled_models(job: Job) -> frozenset[str]:
    """The model keys (`kind/name`) the job's compiled prompt loads; none if it was not compiled."""
    return job.compiled.model_keys if job.compiled is not None else frozenset()


@dataclass
class FairOrder:
    """Round-robin across client ids: remembers when each client was last served (the latest `memory`)."""

    memory: int = 10_000
    _served: OrderedDict[str | None, int] = field(default_factory=OrderedDict)
    _turn: itertools.count = field(default_factory=itertools.count)

    def order(self, pending: Sequence[Job]) -> list[Job]:
        """`pending` (in queue order) interleaved across clients, least recently served client first."""
        by_client: dict[str | None, list[Job]] = {}
        for job in pending:
            by_client.setdefault(job.client_id, []).append(job)
        clients = sorted(by_client, key=lambda c: self._served.get(c, -1))  # stable: ties keep queue order
        ordered: list[Job] = []
        for rank in range(max((len(jobs) for jobs in by_client.values()), default=0)):
            ordered.extend(by_client[c][rank] for c in clients if rank < len(by_client[c]))
        return ordered

    def served(self, client_id: str | None) -> None:
        self._served.pop(client_id, None)
        self._served[client_id] = next(self._turn)
        if len(self._served) > self.memory:  # web pages make a client id per visit: forget the oldest
            self._served.popitem(last=False)


@dataclass
class Candidate:
    """An idle worker as the chooser sees it."""

    key: Any
    holdings: Holdings


def best_worker(job: Job, idle: Sequence[Candidate], keys_of: Callable[[Job], set[str]] | None,
                models_of: ModelsOf = compiled_models) -> Candidate:
    """Holds the models > covers most of the graph's cache keys > the first idle one."""
    wanted = models_of(job)
    holders = [c for c in idle if wanted and wanted <= c.holdings.models]
    if holders:
        return holders[0]
    if keys_of is not None and len(idle) > 1 and any(c.holdings.cache_keys for c in idle):
        keys = keys_of(job)
        covered = [len(keys & c.holdings.cache_keys) for c in idle]
        if max(covered) > 0:
            return idle[covered.index(max(covered))]
    return idle[0]


class Chooser:
    """Pairs the next prompt with an idle worker; `affinity=False` takes the first idle worker (benchmarks)."""

    def __init__(self, affinity: bool = True, max_passes: int = 8, models_of: ModelsOf = compiled_models) -> None:
        self.affinity = affinity
        self.max_passes = max_passes
        self.models_of = models_of
        self.fair = FairOrder()
        self._passed: dict[str, int] = {}

    def choose(self, pending: Sequence[Job], idle: Sequence[Candidate], busy: Iterable[Holdings],
               keys_of: Callable[[Job], set[str]] | None = None) -> tuple[Job, Candidate] | None:
        ordered = self.fair.order(pending)
        if not ordered or not idle:
            return None
        waiting = {job.prompt_id for job in ordered}
        self._passed = {pid: n for pid, n in self._passed.items() if pid in waiting}  # deleted ones go
        if not self.affinity:
            return self._take(ordered[0], idle[0])
        head = ordered[0]
        if self._passed.get(head.prompt_id, 0) < self.max_passes and self._held_by(head, busy):
            for job in ordered[1:]:
                wanted = self.models_of(job)
                holder = next((c for c in idle if wanted and wanted <= c.holdings.models), None)
                if holder is not None:
                    self._passed[head.prompt_id] = self._passed.get(head.prompt_id, 0) + 1
                    return self._take(job, holder)
        return self._take(head, best_worker(head, idle, keys_of, self.models_of))

    def _held_by(self, job: Job, busy: Iterable[Holdings]) -> bool:
        wanted = self.models_of(job)
        return bool(wanted) and any(wanted <= holdings.models for holdings in busy)

    def _take(self, job: Job, worker: Candidate) -> tuple[Job, Candidate]:
        self._passed.pop(job.prompt_id, None)
        self.fair.served(job.client_id)
        return job, worker
