"""What a server knows in memory of its running jobs beyond the store: their latest progress, and
who waits for news of them (``GET /jobs/<id>/events``, ``GET /jobs/<id>/logs?follow=true``).

Progress lives here only, in the memory of the server whose driver runs the job: it changes every
second and is worth nothing once the job ended, so it never costs a store write. Another server
sharing the store shows no progress for that job; a restarted server shows it again from the
driver's next report. News (new lines stored, progress, a change of state) wakes every waiter of
the job; waiters also look at the store at least every ``poll_s``, so news missed here (a state
written by another server, a kill) is seen all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Mapping

Progress = Mapping[str, Mapping[str, int]]


class JobWatch:
    def __init__(self) -> None:
        self._progress: dict[
            str, tuple[Progress, datetime.datetime]
        ] = {}  # job id -> figures, when they came
        self._news: dict[str, asyncio.Event] = {}  # job id -> set at its next news

    def progress(self, job_id: str) -> tuple[Progress, datetime.datetime] | None:
        return self._progress.get(job_id)

    def set_progress(self, job_id: str, progress: Progress, updated: datetime.datetime) -> None:
        self._progress[job_id] = (progress, updated)
        self.news(job_id)

    def ended(self, job_id: str) -> None:
        self._progress.pop(job_id, None)
        self.news(job_id)

    def news(self, job_id: str) -> None:
        event = self._news.pop(job_id, None)
        if event is not None:
            event.set()

    async def wait(self, job_id: str, timeout_s: float) -> None:
        """Until the job's next news, or ``timeout_s``."""
        event = self._news.get(job_id)
        if event is None:
            event = self._news[job_id] = asyncio.Event()
        # Left in place at a timeout: other waiters may share it. The job's next news (its end,
        # at the latest) takes it away.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()
