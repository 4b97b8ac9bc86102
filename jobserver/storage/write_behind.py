"""Job writes that may trail the job path: a job's insert, and the finish of a job already answered.

The job path sends a job to its driver before inserting it, and answers a sync job that finished
before storing its end: each of those two writes is held here and done a short delay later (the
holder decides how long), or at once when anything else about the job needs the store. Everything
above the store goes through this layer, so a held write is never contradicted:

* every write about a job first completes that job's held insert, and every write other than a
  held finish also completes its held finish (a kill or a failure that comes after an answered
  finish then finds the job FINISHED, as the store's compare-and-set makes it);
* a finish is not held while another final state of the same job is being written (it is then
  written at once, and answered by what the store says), so an answer is never overturned;
* reads answer from memory what is held (a job, its posted config, its result); listing jobs and
  the jobs of a context complete the held writes they cover first.

A job's pending callback is queued by the store in the transaction that stores its end, so a held
finish has none yet: nothing can claim or deliver the callback of a job whose end is not durable
(and readable) yet. Claiming one job's callback first completes that job's held writes, as any
other write about a job does.

A held insert that fails is dropped (its holder reports the error; the job was never accepted). A
held finish that fails stays held, answered from memory, until a later write succeeds.

With write-behind off (``spark.jobserver.write-behind = off``) nothing is held: ``hold_insert``
writes before it returns (so the job is stored before it is sent), and ``hold_finish`` returns
None (so the finish is stored before it is answered).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from jobserver.common.errors import StoreUnavailable
from jobserver.common.records import (
    BinaryRecord,
    BinaryType,
    ContextRecord,
    ErrorMap,
    JobRecord,
    PendingCallback,
    ServerRecord,
    utc_now,
)
from jobserver.common.states import ContextState, JobState
from jobserver.storage.base import Store
from jobserver.storage.results import FileResult, Result
from jobserver.storage.scheduling import SchedulingPassThrough

_T = TypeVar("_T")


class HeldWrite(Generic[_T]):
    """One write that is done once: by its holder after a delay, or sooner by whoever needs it."""

    def __init__(
        self, job: JobRecord, store_it: Callable[[], Awaitable[_T]], *, retry: bool, payload: Any = None
    ) -> None:
        self.job = job  # what reads see while the write is held
        self.payload = payload  # … and the posted config (insert) or the result (finish)
        self._store_it = store_it
        self._retry = retry  # after a failed attempt: stay held (True) or give up for good
        self._due = asyncio.Event()
        self._attempt: asyncio.Future[_T] | None = None
        self._outcome: asyncio.Future[_T] | None = None
        self.on_settled: Callable[[], object] = lambda: None  # written, or given up for good

    async def write(self, *, within_s: float = 0.0) -> _T:
        """Write within ``within_s``, or at once when someone needs it sooner; the write's outcome."""
        if self._outcome is None and self._attempt is None and within_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s):
                    await self._due.wait()
        return await self.write_now()

    async def write_now(self) -> _T:
        if self._outcome is not None:
            return await self._outcome
        if self._attempt is not None:  # under way: its outcome is ours (shielded: we may be cancelled)
            return await asyncio.shield(self._attempt)
        self._due.set()
        attempt = self._attempt = asyncio.get_running_loop().create_future()
        try:
            value = await self._store_it()
        except BaseException as error:
            self._attempt = None
            if isinstance(error, asyncio.CancelledError):
                attempt.cancel()
            else:
                attempt.set_exception(error)
                attempt.exception()  # retrieved: nobody else may be waiting
                if not self._retry:
                    self._outcome = attempt
                    self.on_settled()
            raise
        attempt.set_result(value)
        self._outcome = attempt
        self.on_settled()
        return value


@dataclasses.dataclass(frozen=True, slots=True)
class HeldFinish:
    """A finish answered before it is stored: ``record`` is the answer, ``write`` stores it."""

    record: JobRecord
    result: bytes | FileResult  # a large result's spool file until the write has stored it
    write: Callable[..., Awaitable[JobRecord | None]]


class WriteBehindStore(SchedulingPassThrough, Store):
    _store: Store

    def __init__(self, store: Store, *, enabled: bool) -> None:
        self._store = store
        self.enabled = enabled
        self._inserts: dict[str, HeldWrite[None]] = {}
        self._finishes: dict[str, HeldWrite[JobRecord | None]] = {}
        # Jobs whose final state is being written other than by a held finish (a kill, a failure).
        self._final_writes: collections.Counter[str] = collections.Counter()

    # --- holding -----------------------------------------------------------------------------------

    async def hold_insert(self, job: JobRecord, config: Mapping[str, Any]) -> HeldWrite[None]:
        """Hold the insert of a new job; its holder calls ``write`` (within a delay) once it has
        sent the job. With write-behind off the job is inserted here, before it is sent."""
        if not self.enabled:
            await self._store.insert_job(job, config)
            held = HeldWrite(job, _nothing, retry=False)
            await held.write_now()
            return held
        held = HeldWrite(job, lambda: self._store.insert_job(job, config), retry=False, payload=config)
        self._inserts[job.id] = held
        held.on_settled = functools.partial(self._inserts.pop, job.id, None)
        return held

    async def hold_finish(self, job: JobRecord, result: bytes | FileResult) -> HeldFinish | None:
        """Hold the finish of ``job`` (a record of it from before its end), to be answered now and
        stored by ``HeldFinish.write``; None when it must be stored first (``finish_job``)."""
        inserted = await self._complete_insert(job.id)
        if not inserted or not self.enabled or self._final_writes[job.id] or job.id in self._finishes:
            return None
        record = dataclasses.replace(job, state=JobState.FINISHED, end_time=utc_now())
        held: HeldWrite[JobRecord | None] = HeldWrite(
            record,
            lambda: self._store.finish_job(job.id, result, end_time=record.end_time),
            retry=True,
            payload=result,
        )
        self._finishes[job.id] = held
        held.on_settled = functools.partial(self._finishes.pop, job.id, None)
        return HeldFinish(record, result, held.write)

    async def flush(self, *, context_id: str | None = None) -> None:
        """Complete every held write (of one context's jobs). A finish the store cannot take stays
        held; the first such error is raised once every write has been tried."""
        failure: StoreUnavailable | None = None
        for job_id in [job_id for job_id, held in self._held() if context_id in (None, held.job.context_id)]:
            try:
                await self._complete_job(job_id)
            except StoreUnavailable as error:
                failure = failure or error
        if failure is not None:
            raise failure

    def _held(self) -> Iterator[tuple[str, HeldWrite[Any]]]:
        yield from list(self._inserts.items())
        yield from list(self._finishes.items())

    async def _complete_insert(self, job_id: str) -> bool:
        """Write the job's held insert, if any; False when that failed (its holder reports why,
        and the job was never accepted)."""
        held = self._inserts.get(job_id)
        if held is not None:
            try:
                await held.write_now()
            except Exception:
                return False
        return True

    async def _complete_job(self, job_id: str) -> None:
        await self._complete_insert(job_id)
        finish = self._finishes.get(job_id)
        if finish is not None:
            await finish.write_now()

    @contextlib.asynccontextmanager
    async def _final_write(self, job_id: str, target: JobState) -> AsyncIterator[None]:
        await self._complete_job(job_id)
        if not target.is_final:
            yield
            return
        self._final_writes[job_id] += 1
        try:
            yield
        finally:
            self._final_writes[job_id] -= 1
            if not self._final_writes[job_id]:
                del self._final_writes[job_id]

    # --- jobs: writes --------------------------------------------------------------------------------

    async def insert_job(self, job: JobRecord, config: Mapping[str, Any]) -> None:
        await self._store.insert_job(job, config)

    async def update_job(
        self, job_id: str, target: JobState, *, error: ErrorMap | None = None
    ) -> JobRecord | None:
        async with self._final_write(job_id, target):
            return await self._store.update_job(job_id, target, error=error)

    async def finish_job(
        self, job_id: str, result_json: bytes | FileResult, *, end_time: datetime.datetime | None = None
    ) -> JobRecord | None:
        async with self._final_write(job_id, JobState.FINISHED):
            return await self._store.finish_job(job_id, result_json, end_time=end_time)

    async def append_job_log(self, job_id: str, first_line: int, lines: Sequence[str]) -> None:
        await self._complete_insert(job_id)  # the lines refer to the job's row
        await self._store.append_job_log(job_id, first_line, lines)

    # --- jobs: reads ---------------------------------------------------------------------------------

    async def get_job(self, job_id: str) -> JobRecord | None:
        held = self._finishes.get(job_id) or self._inserts.get(job_id)
        return held.job if held is not None else await self._store.get_job(job_id)

    async def get_result(self, job_id: str) -> Result | None:
        held = self._finishes.get(job_id)  # a large result: read from its spool file
        return held.payload if held is not None else await self._store.get_result(job_id)

    async def job_log(self, job_id: str, start: int, size: int) -> tuple[int, list[str]]:
        return await self._store.job_log(job_id, start, size)

    async def get_job_config(self, job_id: str) -> Mapping[str, Any] | None:
        held = self._inserts.get(job_id)
        return held.payload if held is not None else await self._store.get_job_config(job_id)

    async def jobs_in_context(
        self, context_id: str, states: Collection[JobState] | None = None
    ) -> list[JobRecord]:
        await self.flush(context_id=context_id)
        return await self._store.jobs_in_context(context_id, states)

    async def list_jobs(self, limit: int, state: JobState | None = None) -> list[JobRecord]:
        with contextlib.suppress(StoreUnavailable):  # what stays held is answered from memory
            await self.flush()
        jobs = await self._store.list_jobs(limit, state)
        if not self._finishes:
            return jobs
        held = {job_id: write.job for job_id, write in self._finishes.items()}
        listed = [held.get(job.id, job) for job in jobs]
        if state is None:
            return listed
        ids = {job.id for job in listed}
        listed += [job for job in held.values() if job.id not in ids]
        listed = [job for job in listed if job.state is state]
        listed.sort(key=lambda job: job.start_time, reverse=True)  # as the store orders them
        return listed[:limit]

    async def binary_users(self, app_name: str) -> list[str]:
        for job_id in list(self._inserts):  # a job held for insert may use the binary
            await self._complete_insert(job_id)
        return await self._store.binary_users(app_name)

    # --- pending callbacks ---------------------------------------------------------------------------

    async def claim_callbacks(
        self, owner: str, *, lease_s: float, job_id: str | None = None, own: bool = False
    ) -> list[PendingCallback]:
        if job_id is not None:
            await self._complete_job(job_id)
        return await self._store.claim_callbacks(owner, lease_s=lease_s, job_id=job_id, own=own)

    async def reschedule_callback(
        self, job_id: str, owner: str, *, attempts: int, next_attempt_time: datetime.datetime, lease_s: float
    ) -> bool:
        return await self._store.reschedule_callback(
            job_id, owner, attempts=attempts, next_attempt_time=next_attempt_time, lease_s=lease_s
        )

    async def remove_callback(self, job_id: str) -> None:
        await self._store.remove_callback(job_id)

    async def release_callbacks(self, owner: str) -> int:
        return await self._store.release_callbacks(owner)

    async def list_callbacks(self) -> list[PendingCallback]:
        return await self._store.list_callbacks()

    async def beat(self, server: ServerRecord) -> str | None:
        return await self._store.beat(server)

    async def list_servers(self) -> list[ServerRecord]:
        return await self._store.list_servers()

    async def remove_server(self, server_id: str) -> None:
        await self._store.remove_server(server_id)

    async def adopt_contexts(
        self, dead_server_id: str, adopter_id: str, *, silent_since: datetime.datetime
    ) -> list[ContextRecord]:
        return await self._store.adopt_contexts(dead_server_id, adopter_id, silent_since=silent_since)

    # --- the rest goes straight to the store ---------------------------------------------------------

    async def open(self) -> None:
        await self._store.open()

    async def close(self) -> None:
        await self._store.close()

    async def put_blob(self, sha256: str, source: Path) -> None:
        await self._store.put_blob(sha256, source)

    async def blob_file(self, sha256: str) -> Path:
        return await self._store.blob_file(sha256)

    async def add_binary_version(
        self,
        app_name: str,
        binary_type: BinaryType,
        sha256: str,
        size_bytes: int,
        upload_time: datetime.datetime,
    ) -> BinaryRecord:
        return await self._store.add_binary_version(app_name, binary_type, sha256, size_bytes, upload_time)

    async def latest_binaries(self) -> list[BinaryRecord]:
        return await self._store.latest_binaries()

    async def latest_binary(self, app_name: str) -> BinaryRecord | None:
        return await self._store.latest_binary(app_name)

    async def get_binaries(self, binary_ids: Collection[int]) -> list[BinaryRecord]:
        return await self._store.get_binaries(binary_ids)

    async def delete_binary(self, app_name: str) -> bool:
        return await self._store.delete_binary(app_name)

    async def insert_context(self, context: ContextRecord) -> None:
        await self._store.insert_context(context)

    async def latest_context(self, name: str) -> ContextRecord | None:
        return await self._store.latest_context(name)

    async def list_contexts(
        self, states: Collection[ContextState] | None = None, *, owner: str | None = None
    ) -> list[ContextRecord]:
        return await self._store.list_contexts(states, owner=owner)

    async def update_context(
        self,
        context_id: str,
        target: ContextState,
        *,
        error: str | None = None,
        application_id: str | None = None,
        web_ui_url: str | None = None,
    ) -> ContextRecord | None:
        return await self._store.update_context(
            context_id, target, error=error, application_id=application_id, web_ui_url=web_ui_url
        )

    async def delete_expired(self, before: datetime.datetime) -> dict[str, int]:
        return await self._store.delete_expired(before)


async def _nothing() -> None:
    return None
