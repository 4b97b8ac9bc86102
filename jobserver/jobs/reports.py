"""What drivers report about jobs, and what a context's end, restart or rejoin means for its jobs.

``DriverReports`` is the ``ContextEvents`` listener the ContextManager tells: each report becomes a
compare-and-set state change (anything a driver says about a job that is already final changes
nothing), and the report is acknowledged to the driver once it is stored (the driver holds it until
then, and sends it again to a restarted server). A sync request waiting for a job that finished is
answered from memory and the finish stored a moment later (``WriteBehindStore.hold_finish``): a
client that sends its next job at once gets it to its driver before the last one's bookkeeping.

Jobs a driver no longer runs after a restart of the server, or after a supervised relaunch of the
driver, are sent again with the same id, rebuilt from what the store holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog

from driver.protocol import (
    JobFailed,
    JobFinished,
    JobKilled,
    JobLog,
    JobProgress,
    JobReportAck,
    JobResultChunk,
    JobResultChunkAck,
    JobResultSize,
    JobStarted,
    Message,
)
from jobserver.common import metrics
from jobserver.common.config import Settings
from jobserver.common.errors import NotFound, StoreUnavailable, error_map
from jobserver.common.records import JobRecord, utc_now
from jobserver.common.states import ACTIVE_JOB_STATES, JobState
from jobserver.common.tasks import BackgroundTasks, retry_while_store_unavailable
from jobserver.contexts.events import ContextEnding
from jobserver.contexts.live import LiveContext
from jobserver.drivers.bus import BusError
from jobserver.jobs.flow import JobFlow
from jobserver.jobs.incoming_results import IncomingResults, ResultIncomplete, ResultTooLarge
from jobserver.jobs.slots import Admission, Slots
from jobserver.jobs.submission import killed_error
from jobserver.jobs.waiters import Waiters
from jobserver.storage.results import FileResult
from jobserver.storage.write_behind import HeldFinish, WriteBehindStore

log = structlog.get_logger(__name__)

# How long a report the store could not take is tried again; then it is logged and given up (the
# driver still holds a final report, and sends it again to a restarted server).
REPORT_RETRY_LIMIT_S = 3600.0


class DriverReports:
    def __init__(
        self,
        settings: Settings,
        store: WriteBehindStore,
        flow: JobFlow,
        slots: Slots,
        waiters: Waiters,
        tasks: BackgroundTasks,
    ) -> None:
        self._settings = settings
        self._store = store
        self._flow = flow
        self._slots = slots
        self._waiters = waiters
        self._tasks = tasks
        self.results = IncomingResults(settings)  # large results, spooled as their chunks come
        self._storing: set[asyncio.Task[None]] = set()  # answered finishes on their way to the store

    # --- reports -----------------------------------------------------------------------------------

    async def on_job_report(self, context: LiveContext, report: Message) -> None:
        if isinstance(report, JobProgress):  # memory only; of a job that still holds its slot
            if self._slots.holds(context.id, report.job_id):
                self._flow.watch.set_progress(report.job_id, report.progress, utc_now())
            return
        try:
            if not await self._of_context(context, report):
                return
            await self._handle(context, report)
        except StoreUnavailable as error:
            # The driver said it once; the store must hear it when it is back. Later reports go on
            # meanwhile (their compare-and-set makes the order harmless).
            log.warning("job_report_deferred", message_type=report.TYPE, error=error.message)
            self._tasks.spawn(self._handle_later(context, report), name=f"report-{report.TYPE}")

    async def _of_context(self, context: LiveContext, report: Message) -> bool:
        """A driver reports on its own context's jobs only: one that reports on another's (a
        job's code runs in the driver, and a tenant's job could try) is refused. The job holds
        one of the context's slots, or its waiter says whose it is; else the store does (reports
        held across a restart of the server, or that come after a kill)."""
        job_id: str = getattr(report, "job_id", "")
        if self._slots.holds(context.id, job_id):
            return True
        waiter = self._waiters.get(job_id)
        if waiter is not None:
            mine = waiter.job.context_id == context.id
        else:
            job = await self._store.get_job(job_id)
            mine = job is None or job.context_id == context.id  # no such job: nothing to forge
        if not mine:
            log.warning("job_report_refused", context_id=context.id, job_id=job_id, message_type=report.TYPE)
        return mine

    async def _handle_later(self, context: LiveContext, report: Message) -> None:
        await retry_while_store_unavailable(
            lambda: self._handle(context, report),
            what=report.TYPE,
            limit_s=REPORT_RETRY_LIMIT_S,
            delay_first=True,
        )
        log.info("job_report_recorded", message_type=report.TYPE)

    async def _handle(self, context: LiveContext, report: Message) -> None:
        if isinstance(report, JobFinished):
            await self._on_finished(context, report)
        elif isinstance(report, JobStarted):
            # Not awaited: the job's next report need not wait for this write, and if it overtakes
            # it (FINISHED first), the compare-and-set turns the late RUNNING into a no-op.
            self._tasks.spawn(self._record_running(report.job_id), name=f"running-{report.job_id}")
            self._flow.watch.news(report.job_id)
            waiter = self._waiters.get(report.job_id)
            if waiter is not None:
                waiter.wake(None, None)
        elif isinstance(report, JobResultChunk):
            received_bytes = await self.results.add_chunk(context.id, report.job_id, report.data)
            # Once this message is let go of (the bus keeps none it handled): the chunk's frame is
            # freed before the driver sends the next.
            asyncio.get_running_loop().call_soon(self._chunk_put_away, context, report.job_id, received_bytes)
        elif isinstance(report, JobResultSize):
            self.results.expect(report.job_id, report.result_bytes)
        elif isinstance(report, JobLog):
            await self._store_log(report)
        elif isinstance(report, JobFailed):
            self._slots.release(context.id, report.job_id)
            self.results.discard(report.job_id)
            await self._flow.fail(report.job_id, report.error, kind=report.kind)
            self._acknowledge(context, report.job_id)
            await self._flow.after_job(context, failed=True)
        elif isinstance(report, JobKilled):
            self._slots.release(context.id, report.job_id)
            self.results.discard(report.job_id)
            await self._flow.finalise(report.job_id, JobState.KILLED, killed_error(report.job_id))
            self._acknowledge(context, report.job_id)
            await self._flow.after_job(context, failed=False)

    async def _store_log(self, report: JobLog) -> None:
        """A job's lines, awaited: the bus hands over the driver's messages in order, so a job's
        lines are stored before its end (its outcome comes after them)."""
        limit = self._settings.job_log_max_lines + 1  # the driver's marker line is the last
        lines = report.lines[: max(limit - report.first_line, 0)]
        if not lines:
            return
        try:
            await self._store.append_job_log(report.job_id, report.first_line, lines)
        except StoreUnavailable:
            raise
        except Exception as error:  # a job the store does not hold (any more): nothing to add to
            log.warning("job_log_dropped", job_id=report.job_id, error=str(error))
            return
        self._flow.watch.news(report.job_id)

    async def _record_running(self, job_id: str) -> None:
        await retry_while_store_unavailable(
            lambda: self._store.update_job(job_id, JobState.RUNNING),
            what="job_started",
            limit_s=REPORT_RETRY_LIMIT_S,
        )

    async def _on_finished(self, context: LiveContext, report: JobFinished) -> None:
        job_id = report.job_id
        self._slots.release(context.id, job_id)
        try:  # a spooled result is kept until stored: a retry after an outage needs it
            result = await self.results.complete(job_id, report.result)
        except (ResultTooLarge, ResultIncomplete) as error:
            await self._flow.fail(job_id, error.error)
            self._acknowledge(context, job_id)
            await self._flow.after_job(context, failed=True)
            return
        waiter = self._waiters.get(job_id)
        if waiter is not None and waiter.sync and not waiter.done.done():
            held = await self._store.hold_finish(waiter.job, result)
            if held is not None:
                waiter.wake(held.record, result)  # answered now, stored a moment later
                self._flow.answered(context, job_id)
                await self._flow.start_queued(context)  # its slot is free
                task = self._tasks.spawn(self._end_once_stored(context, held), name=f"finish-{job_id}")
                self._storing.add(task)
                task.add_done_callback(self._storing.discard)
                return
        # One transaction: a killed job gets no result, and a FINISHED job always has one.
        record = await self._store.finish_job(job_id, result)
        self.results.discard(job_id)  # stored, or never to be (killed meanwhile)
        if record is not None and waiter is not None:
            waiter.wake(record, result)
            await asyncio.sleep(0)  # a sync request waiting for the result answers before the rest
        await self._ended(context, job_id, record, result)

    async def _end_once_stored(self, context: LiveContext, held: HeldFinish) -> None:
        """The rest of an answered job's end, once its finish is stored (``finish-store-delay``
        after the answer, or sooner when something needs it stored)."""
        try:
            record = await held.write(within_s=self._settings.finish_store_delay_s)
        except StoreUnavailable:
            record = await retry_while_store_unavailable(
                held.write, what="job_finished", limit_s=REPORT_RETRY_LIMIT_S, delay_first=True
            )
        self.results.discard(held.record.id)
        if record is None:  # cannot be: a final state written meanwhile comes after the finish
            log.error("answered_job_not_stored", job_id=held.record.id)
        await self._ended(context, held.record.id, record, held.result)

    async def _ended(
        self, context: LiveContext, job_id: str, record: JobRecord | None, result: bytes | FileResult
    ) -> None:
        if record is not None:
            log.info("job_ended", job_id=job_id, state=JobState.FINISHED.value)
            metrics.job_ended(record)
            self._flow.call_back(record, result)
        await self._flow.release(job_id, record, result if record is not None else None)
        await self._flow.after_job(context, failed=False)
        self._acknowledge(context, job_id)

    def _chunk_put_away(self, context: LiveContext, job_id: str, received_bytes: int) -> None:
        with contextlib.suppress(BusError):  # a driver gone: its reports come again, if ever
            context.send(JobResultChunkAck(job_id=job_id, received_bytes=received_bytes))

    def _acknowledge(self, context: LiveContext, job_id: str) -> None:
        """The report is stored: the driver may forget it."""
        with contextlib.suppress(BusError):
            context.send(JobReportAck(job_id=job_id))

    async def close(self, timeout_s: float) -> None:
        """Store what is held (the jobs sent but not stored yet, the answered finishes) and let
        their ends be acknowledged, within ``timeout_s``: a store that is down does not take them,
        and the drivers hold their reports until one does."""
        with contextlib.suppress(TimeoutError, StoreUnavailable):
            async with asyncio.timeout(timeout_s):
                await self._store.flush()
                if self._storing:
                    await asyncio.wait(list(self._storing))

    # --- context events ----------------------------------------------------------------------------

    async def on_context_ended(self, context: LiveContext, ending: ContextEnding) -> None:
        """Every unfinished job of a context that ended (or is ending) becomes ERROR."""
        self._slots.close(context.id)
        self.results.discard_context(context.id)
        for job in await self._store.jobs_in_context(context.id, ACTIVE_JOB_STATES):
            await self._flow.fail(job.id, ending.job_error)

    async def on_context_restarting(self, context: LiveContext, reason: str) -> None:
        """Supervise: the driver died and another is on its way; what it ran runs again then."""
        for job_id in sorted(self._slots.vacate(context.id)):
            self.results.discard(job_id)
            self._flow.watch.ended(job_id)  # its progress starts over in the next driver
            if await self._store.update_job(job_id, JobState.RESTARTING) is not None:
                log.info("job_restarting", job_id=job_id, context_id=context.id, reason=reason)

    def on_context_released(self, context: LiveContext) -> None:
        """Another server took the context over: its slots and result spools here go; its jobs,
        queued ones too, are that server's to run and record (it sends them again)."""
        self._slots.close(context.id)
        self.results.discard_context(context.id)

    async def on_context_restarted(self, context: LiveContext) -> None:
        restarting = await self._store.jobs_in_context(context.id, frozenset({JobState.RESTARTING}))
        await self._resubmit(context, restarting)
        await self._flow.start_queued(context)

    async def on_driver_rejoined(
        self, context: LiveContext, running_job_ids: list[str], held_job_ids: list[str]
    ) -> None:
        """After a server restart: the driver's running jobs hold its slots again, its held final
        reports follow, and jobs it never received (queued or in flight) are sent again."""
        running, held = set(running_job_ids), set(held_job_ids)
        self.results.restart(held)  # sent again from their first chunk
        self._slots.occupy(context.id, running)
        lost = []
        for job in await self._store.jobs_in_context(context.id, ACTIVE_JOB_STATES):
            if job.id in running:
                if job.state is JobState.STARTED:
                    self._tasks.spawn(self._record_running(job.id), name=f"running-{job.id}")
            elif job.id not in held:
                lost.append(job)
        await self._resubmit(context, lost)
        if not held:  # else the held report ends it when it arrives
            await self._flow.end_idle_adhoc(context)

    async def _resubmit(self, context: LiveContext, jobs: Sequence[JobRecord]) -> None:
        for job in sorted(jobs, key=lambda job: job.start_time):
            try:
                start = await self._flow.stored_start_message(job)
            except NotFound as error:
                await self._flow.finalise(job.id, JobState.ERROR, error_map(error.message))
                continue
            admission = self._slots.readmit(context.id, start)
            if admission is not None:
                log.info("job_resubmitted", job_id=job.id, context_id=context.id, state=job.state.value)
            if admission is Admission.RUN:
                await self._flow.send(context, start)
