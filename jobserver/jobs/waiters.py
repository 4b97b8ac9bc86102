"""The requests that wait for a job: an async one until it starts, a sync one until it ends."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from jobserver.common.errors import JobServerError
from jobserver.common.records import JobRecord
from jobserver.contexts.live import LiveContext
from jobserver.storage.results import Result

Outcome = tuple[JobRecord, Result | None]  # the final record and, when FINISHED, the result


@dataclass(eq=False)
class Waiter:
    job: JobRecord  # as submitted
    sync: bool
    started: asyncio.Future[None]
    done: asyncio.Future[Outcome]
    adhoc_context: LiveContext | None  # ended with its job

    def wake(self, record: JobRecord | None, result: Result | None) -> None:
        """The job started, or (with ``record``) ended."""
        if not self.started.done():  # a short job reports its outcome without JobStarted
            self.started.set_result(None)
        if record is not None and not self.done.done():
            self.done.set_result((record, result))

    def refuse(self, error: JobServerError) -> None:
        """Refused before it ran (unknown class, bad package, …): the request gets ``error``."""
        if not self.started.done():
            self.started.set_exception(error)
            self.started.exception()  # retrieved: an async request may have been answered already


class Waiters:
    def __init__(self) -> None:
        self._waiters: dict[str, Waiter] = {}

    def add(self, job: JobRecord, *, sync: bool, adhoc_context: LiveContext | None) -> Waiter:
        loop = asyncio.get_running_loop()
        waiter = Waiter(job, sync, loop.create_future(), loop.create_future(), adhoc_context)
        self._waiters[job.id] = waiter
        return waiter

    def get(self, job_id: str) -> Waiter | None:
        return self._waiters.get(job_id)

    def pop(self, job_id: str) -> Waiter | None:
        return self._waiters.pop(job_id, None)
