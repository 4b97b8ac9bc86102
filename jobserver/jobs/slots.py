"""Which jobs hold a context's driver slots, and which wait in its queue for one.

A context's driver runs at most ``max-jobs-per-context`` jobs at once; beyond that, jobs wait in a
FIFO queue of at most ``max-queued-jobs-per-context`` (then a submission is refused with 503), each
with the StartJob to send when a slot frees. This module is the only code that changes either.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass, field

from driver.protocol import StartJob
from jobserver.common.errors import NoSlotsAvailable


class Admission(enum.Enum):
    RUN = "run"  # it took a slot: send it now
    QUEUED = "queued"  # it waits for a slot


@dataclass(eq=False)
class _ContextJobs:
    running: set[str] = field(default_factory=set)
    queue: collections.OrderedDict[str, StartJob] = field(default_factory=collections.OrderedDict)


class Slots:
    def __init__(self, *, max_running: int, max_queued: int) -> None:
        self._max_running = max_running
        self._max_queued = max_queued
        self._contexts: dict[str, _ContextJobs] = {}

    def occupancy(self) -> dict[str, tuple[int, int]]:
        """Jobs running and queued, by context id (for /metrics)."""
        return {
            context_id: (len(jobs.running), len(jobs.queue)) for context_id, jobs in self._contexts.items()
        }

    def _of(self, context_id: str) -> _ContextJobs:
        jobs = self._contexts.get(context_id)
        if jobs is None:
            jobs = self._contexts[context_id] = _ContextJobs()
        return jobs

    def admit(self, context_id: str, start: StartJob, *, context_name: str) -> Admission:
        """A slot for a new job, or a place in the queue; NoSlotsAvailable when both are full."""
        jobs = self._of(context_id)
        if len(jobs.running) < self._max_running:
            jobs.running.add(start.job_id)
            return Admission.RUN
        if len(jobs.queue) < self._max_queued:
            jobs.queue[start.job_id] = start
            return Admission.QUEUED
        raise NoSlotsAvailable(
            f"Too many running jobs ({self._max_running}) for job context '{context_name}'"
        )

    def readmit(self, context_id: str, start: StartJob) -> Admission | None:
        """A job the driver no longer runs (after a restart) takes a slot or waits, however long
        the queue; None when it already has one or waits already."""
        jobs = self._of(context_id)
        if start.job_id in jobs.running or start.job_id in jobs.queue:
            return None
        if len(jobs.running) < self._max_running:
            jobs.running.add(start.job_id)
            return Admission.RUN
        jobs.queue[start.job_id] = start
        return Admission.QUEUED

    def occupy(self, context_id: str, job_ids: set[str]) -> None:
        """A rejoined driver's running jobs hold its slots again."""
        self._of(context_id).running.update(job_ids)

    def release(self, context_id: str, job_id: str) -> Admission | None:
        """The job no longer holds a slot nor waits: what it did until now."""
        jobs = self._contexts.get(context_id)
        if jobs is None:
            return None
        if job_id in jobs.running:
            jobs.running.discard(job_id)
            return Admission.RUN
        if jobs.queue.pop(job_id, None) is not None:
            return Admission.QUEUED
        return None

    def next_to_start(self, context_id: str) -> StartJob | None:
        """The oldest queued job, moved to a free slot; None when no slot or no job waits."""
        jobs = self._contexts.get(context_id)
        if jobs is None or not jobs.queue or len(jobs.running) >= self._max_running:
            return None
        _, start = jobs.queue.popitem(last=False)
        jobs.running.add(start.job_id)
        return start

    def holds(self, context_id: str, job_id: str) -> bool:
        """The job holds one of the context's slots (it was sent to that context's driver)."""
        jobs = self._contexts.get(context_id)
        return jobs is not None and job_id in jobs.running

    def idle(self, context_id: str) -> bool:
        jobs = self._contexts.get(context_id)
        return jobs is None or not (jobs.running or jobs.queue)

    def vacate(self, context_id: str) -> frozenset[str]:
        """The driver is gone (it runs nothing now): the jobs that held its slots."""
        jobs = self._contexts.get(context_id)
        if jobs is None:
            return frozenset()
        running, jobs.running = frozenset(jobs.running), set()
        return running

    def close(self, context_id: str) -> None:
        """The context has ended: nothing runs in it or waits for it any more."""
        self._contexts.pop(context_id, None)
