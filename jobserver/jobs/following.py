"""Following a job: its log lines (``GET /jobs/<id>/logs``, paged or followed) and its events
(``GET /jobs/<id>/events``: state changes and progress), until it ends.

A follower reads the store, then waits for the job's news (``JobWatch``: lines stored, progress, a
state change) or ``poll_s``, and reads again. The driver sends a job's last lines before its
outcome and the bus hands messages over in order, so once a read of the job finds it final, one
more read of its lines finds them all.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass

from jobserver.common.errors import NotFound
from jobserver.common.records import JobRecord, LogPage
from jobserver.jobs.watch import JobWatch, Progress
from jobserver.storage.write_behind import WriteBehindStore

DEFAULT_PAGE_LINES = 100
FOLLOW_BATCH_LINES = 1000
POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A state the job reached (``progress`` None) or its latest progress (and when it came)."""

    job: JobRecord
    progress: Progress | None = None
    updated: datetime.datetime | None = None


class JobFollowing:
    def __init__(self, store: WriteBehindStore, watch: JobWatch, *, poll_s: float = POLL_S) -> None:
        self._store = store
        self._watch = watch
        self._poll_s = poll_s

    def progress(self, job: JobRecord) -> tuple[Progress, datetime.datetime] | None:
        """The latest progress of a running job this server's driver reported (None otherwise)."""
        return None if job.state.is_final else self._watch.progress(job.id)

    async def log_page(self, job_id: str, start: int | None, size: int | None) -> LogPage:
        """``size`` lines from ``start``; the last ``size`` lines when ``start`` is None."""
        await self._existing(job_id)
        size = DEFAULT_PAGE_LINES if size is None else max(size, 0)
        if start is None:
            total, _ = await self._store.job_log(job_id, 0, 0)
            start = max(total - size, 0)
        total, lines = await self._store.job_log(job_id, start, size)
        return LogPage(start=start, total=total, lines=lines)

    async def follow_log(self, job_id: str, start: int) -> AsyncIterator[str]:
        """Lines from ``start`` on as they come, until the job has ended and every line is out."""
        job: JobRecord | None = await self._existing(job_id)
        while job is not None:
            ended = job.state.is_final  # read before the lines: its last lines were stored before
            total, lines = await self._store.job_log(job_id, start, FOLLOW_BATCH_LINES)
            for line in lines:
                yield line
            start += len(lines)
            if start < total:
                continue
            if ended:
                return
            await self._watch.wait(job_id, self._poll_s)
            job = await self._store.get_job(job_id)

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's state now and at each change, and its progress when it changes, until it ends."""
        job: JobRecord | None = await self._existing(job_id)
        state = None
        last_progress = None
        while job is not None:
            if job.state is not state:
                state = job.state
                yield JobEvent(job)
            if state.is_final:
                return
            progress = self._watch.progress(job_id)
            if progress is not None and progress is not last_progress:
                last_progress = progress
                yield JobEvent(job, progress[0], progress[1])
            await self._watch.wait(job_id, self._poll_s)
            job = await self._store.get_job(job_id)

    async def _existing(self, job_id: str) -> JobRecord:
        job = await self._store.get_job(job_id)
        if job is None:
            raise NotFound(f"No such job ID {job_id}")
        return job
