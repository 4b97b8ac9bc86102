"""Jobs: from a POST /jobs to a persisted final state and result.

The JobManager resolves what to run (sjs-contract §2.3: cp/mainClass or appName/classPath, from
query or config), picks or creates the context, persists the job (a job that can start at once is
sent first, and its driver's reports wait for the insert; if the insert fails, the job is killed
and the request fails), and turns the driver's reports into compare-and-set state changes.
Anything the driver says about a job that is already final (killed, or failed because its context
ended) changes nothing.

A job's final report is acknowledged to the driver once it is stored (the driver holds it until
then, and sends it again to a restarted server). A sync request waiting for a job that finished is
answered before the result is stored, from memory: nothing else can end the job meanwhile (a kill
or its context's end waits for that write, and one already under way makes the finish wait for
it instead), and until the write is done, reads of the job are answered from memory too.

Jobs a driver no longer runs after a restart of the server, or after a supervised relaunch of the
driver, are sent again with the same id, rebuilt from what the store holds (class, binaries,
posted config).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog

from driver.protocol import (
    FAILURE_ERROR,
    JobFailed,
    JobFinished,
    JobKilled,
    JobPackage,
    JobReportAck,
    JobResultChunk,
    JobStarted,
    KillJob,
    Message,
    StartJob,
    package_fields,
)
from jobserver.common.config import Settings, get_path, merge
from jobserver.common.errors import (
    BadRequest,
    Conflict,
    ErrorMap,
    NoSlotsAvailable,
    NotFound,
    StoreUnavailable,
    error_map,
)
from jobserver.common.records import BinaryRecord, JobRecord, new_id, utc_now
from jobserver.common.states import ACTIVE_JOB_STATES, ContextState, JobState
from jobserver.contexts.manager import ContextManager, LiveContext
from jobserver.drivers.bus import BusError
from jobserver.jobs.callbacks import CallbackPolicy, callback_body, deliver
from jobserver.jobs.submission import (
    JobRequest,
    SubmitOutcome,
    killed_error,
    rejection,
    stops_on_job_error,
    what_to_run,
)
from jobserver.storage import Store

log = structlog.get_logger(__name__)

# How long a stopping server waits for those writes (a store that is down does not take them; the
# drivers hold their reports until it does).
CLOSE_STORE_TIMEOUT_S = 10.0


@dataclass(eq=False)
class _Waiter:
    job: JobRecord  # as submitted
    sync: bool  # a request waits for ``done``
    started: asyncio.Future[None]
    done: asyncio.Future[tuple[JobRecord, bytes | None]]  # final record and, if FINISHED, result
    adhoc_context: LiveContext | None = None


@dataclass(eq=False)
class _Finish:
    """A finished job whose sync request was answered before its result was stored."""

    record: JobRecord
    result: bytes
    stored: asyncio.Future[None]  # done once the first attempt to store it is over
    hurry: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # store it now
    early: bool = False  # answered from the bus's first look: its report is still to be handled


@dataclass(eq=False)
class _Unstored:
    """A job sent to its driver before it was stored."""

    context_id: str
    reports: list[Message] = dataclasses.field(default_factory=list)  # handled after the insert
    due: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # store it now
    ended: ErrorMap | None = None  # its context ended before the insert: it fails once stored


def _wake(waiter: _Waiter, record: JobRecord | None, result: bytes | None) -> None:
    if not waiter.started.done():  # a short job reports its outcome without JobStarted
        waiter.started.set_result(None)
    if record is not None and not waiter.done.done():
        waiter.done.set_result((record, result))


class JobManager:
    def __init__(self, settings: Settings, store: Store, contexts: ContextManager) -> None:
        self._settings = settings
        self._store = store
        self._contexts = contexts
        self._waiters: dict[str, _Waiter] = {}
        self._finishing: dict[str, _Finish] = {}  # job id -> answered, not yet stored
        # Jobs sent before they were stored, with their driver's reports that came before the
        # insert was over, handled in order after it.
        self._before_insert: dict[str, _Unstored] = {}
        # Job and context ids with a final state being written outside the drivers' ordered
        # reports (a kill, a context's end): a job among them is stored before it is answered.
        self._contested: collections.Counter[str] = collections.Counter()
        self._chunks: dict[str, list[bytes]] = {}  # result chunks of jobs still running
        self._tasks: set[asyncio.Task[Any]] = set()
        self._callback_policy = CallbackPolicy(
            attempts=settings.callback_attempts,
            retry_interval_s=settings.callback_retry_interval_s,
            timeout_s=settings.callback_timeout_s,
        )
        contexts.job_listener = self

    # --- submission ------------------------------------------------------------------------------

    async def submit(self, request: JobRequest) -> SubmitOutcome:
        if request.sql:  # kept with the posted config, so GET /jobs/<id>/config shows it
            request = dataclasses.replace(
                request, posted_config=merge(request.posted_config, {"sql": request.sql})
            )
        job_config = merge(self._settings.plain, request.posted_config)
        main_class, cp_entries = what_to_run(request, job_config)
        if request.callback_url:
            scheme = urlsplit(request.callback_url).scheme
            if scheme not in ("http", "https"):
                raise BadRequest("Callback Url has to be 'http'/'https'")
        binaries, uris = await self._resolve_cp(cp_entries)
        timeout_s = (
            request.timeout_s if request.timeout_s is not None else self._settings.default_sync_timeout_s
        )
        live = await self._context_for(request, job_config, main_class)
        job = JobRecord(
            id=new_id(),
            context_id=live.id,
            context_name=live.name,
            class_path=main_class,
            state=JobState.STARTED,
            start_time=utc_now(),
            binary_ids=tuple(binary.id for binary in binaries),
            uris=tuple(uris),
            callback_url=request.callback_url,
        )
        runs_now = await self._admit(live, job.id, request.context)
        waiter = self._wait_for(job, live, request.sync)
        unreachable: BusError | None = None
        unstored: _Unstored | None = None
        try:
            start = StartJob(
                job_id=job.id,
                main_class=main_class,
                packages=await self._packages(binaries, uris),
                config_json=json.dumps(request.posted_config).encode(),
            )
            if runs_now:
                # Sent before it is stored: the driver starts the job without waiting for the
                # write. The driver's reports about it wait for the insert.
                unstored = self._before_insert[job.id] = _Unstored(live.id)
                unreachable = self._try_send_start(live, start)
                if request.sync and unreachable is None:
                    # Its answer waits for the insert anyway: written a little later, or at
                    # once when its driver reports, the write keeps off the driver's way.
                    await self._start_store_delay(unstored)
            await self._store.insert_job(job, request.posted_config)
        except BaseException:  # not accepted after all: stop it if sent, give its slot back
            if unstored is not None and unreachable is None:
                with contextlib.suppress(BusError):
                    self._contexts.send(live, KillJob(job_id=job.id))
            live.job_ids.discard(job.id)
            self._waiters.pop(job.id, None)
            await self._reports_after_insert(live, job.id, inline=False)
            await self._end_adhoc(live)
            raise
        # Logged once the job is on its way: the line is work the driver need not wait for.
        log.info(
            "job_submitted", job_id=job.id, context_id=live.id, main_class=main_class, queued=not runs_now
        )
        await self._reports_after_insert(live, job.id, inline=request.sync)
        if unreachable is not None:  # fails now that it is stored
            await self._fail_unreachable(live, job.id, unreachable)
        elif unstored is not None and unstored.ended is not None:  # … and so does this one
            await self._fail(job.id, unstored.ended)
        if not runs_now:
            live.queue[job.id] = start
            if not request.sync:  # it is accepted; its start may be far off
                return SubmitOutcome(job=job)
        return await self._await_outcome(job, waiter, request.sync, timeout_s)

    async def _start_store_delay(self, unstored: _Unstored) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.start_store_delay_s):
                await unstored.due.wait()

    async def _admit(self, live: LiveContext, job_id: str, context_name: str | None) -> bool:
        """Take a slot (True), or room in the queue (False), or refuse with 503."""
        if len(live.job_ids) < self._settings.max_jobs_per_context:
            live.job_ids.add(job_id)  # no await between the check and this: no over-admission
            return True
        if len(live.queue) < self._settings.max_queued_jobs_per_context:
            return False
        await self._end_adhoc(live)
        raise NoSlotsAvailable(
            f"Too many running jobs ({self._settings.max_jobs_per_context}) "
            f"for job context '{context_name or 'ad-hoc'}'"
        )

    def _wait_for(self, job: JobRecord, live: LiveContext, sync: bool) -> _Waiter:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(job=job, sync=sync, started=loop.create_future(), done=loop.create_future())
        if live.record.is_adhoc:
            waiter.adhoc_context = live
        self._waiters[job.id] = waiter
        return waiter

    def _try_send_start(self, live: LiveContext, start: StartJob) -> BusError | None:
        """Send a job; if its driver cannot be reached, free its slot and say why."""
        try:
            self._contexts.send(live, start)
        except BusError as error:
            live.job_ids.discard(start.job_id)
            return error
        return None

    async def _send_start(self, live: LiveContext, start: StartJob) -> None:
        error = self._try_send_start(live, start)
        if error is not None:
            await self._fail_unreachable(live, start.job_id, error)

    async def _fail_unreachable(self, live: LiveContext, job_id: str, error: BusError) -> None:
        await self._fail(job_id, error_map(f"Context {live.name} is not reachable: {error}"))

    async def _start_queued(self, live: LiveContext) -> None:
        """Fill the context's free slots from its queue, oldest job first."""
        while live.queue and len(live.job_ids) < self._settings.max_jobs_per_context and not live.stopping:
            _, start = live.queue.popitem(last=False)
            live.job_ids.add(start.job_id)
            log.info("job_dequeued", job_id=start.job_id, context_id=live.id)
            await self._send_start(live, start)

    async def _await_outcome(
        self, job: JobRecord, waiter: _Waiter, sync: bool, timeout_s: float
    ) -> SubmitOutcome:
        target: asyncio.Future[Any] = waiter.done if sync else waiter.started
        # Awaited directly, so the request resumes in the loop turn after the driver's report
        # (wait_for over a shield takes three). Only this request awaits the waiter's futures, so
        # the timeout may cancel the one it waits for.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await target
        started, done = waiter.started, waiter.done
        if started.done() and not started.cancelled() and started.exception() is not None:
            raise started.exception()  # type: ignore[misc]
        if sync and done.done() and not done.cancelled():
            final, result = done.result()
            return SubmitOutcome(job=final, result=result, completed=True)
        return SubmitOutcome(job=job)

    async def _context_for(
        self, request: JobRequest, job_config: Mapping[str, Any], main_class: str
    ) -> LiveContext:
        if request.context:
            live = self._contexts.live_by_name(request.context)
            if live is None:
                record = await self._store.latest_context(request.context)
                if record is not None and record.state is ContextState.STOPPING:
                    raise Conflict("Context stop in progress")
                raise NotFound(f"context {request.context} not found")
            if not live.ready.done():
                await self._contexts.wait_ready(live)
            return live
        settings = get_path(job_config, "spark.context-settings", {}) or {}
        context_config = merge(self._settings.context_defaults, settings)
        if request.proxy_user:
            context_config = merge(context_config, {"spark.proxy.user": request.proxy_user})
        prefix = f"{request.proxy_user}~" if request.proxy_user else ""
        return await self._contexts.create(f"{prefix}{uuid.uuid4()}-{main_class}", context_config, adhoc=True)

    async def _resolve_cp(self, entries: Sequence[str]) -> tuple[list[BinaryRecord], list[str]]:
        binaries: list[BinaryRecord] = []
        uris: list[str] = []
        for entry in entries:
            if "://" in entry:
                uris.append(
                    "file://" + entry.removeprefix("local://") if entry.startswith("local://") else entry
                )
                continue
            binary = await self._store.latest_binary(entry)
            if binary is None:
                raise NotFound(f"appName {entry} not found")
            binaries.append(binary)
        return binaries, uris

    async def _packages(self, binaries: list[BinaryRecord], uris: list[str]) -> list[dict[str, str]]:
        packages = []
        for binary in binaries:
            # "" makes the driver fetch the bytes over the bus (drivers on other hosts).
            location = (
                ""
                if self._settings.driver_binaries_over_bus
                else str(await self._store.blob_file(binary.sha256))
            )
            package = JobPackage(binary.app_name, binary.sha256, binary.binary_type.value, location)
            packages.append(package_fields(package))
        for uri in uris:
            packages.append(package_fields(JobPackage(uri.rsplit("/", 1)[-1] or "uri", "", "Uri", uri)))
        return packages

    # --- driver reports --------------------------------------------------------------------------

    def answer_early(self, context: LiveContext, message: JobFinished) -> None:
        """Answer the sync request waiting for this finished job from the bus's first look at
        the report, a loop turn and the report's way through the handlers before its handling:
        when the job is stored, its whole result is in this message, and the bus had nothing in
        hand (so no earlier report of it is still to be handled). Its handling does the rest."""
        job_id = message.job_id
        if job_id in self._before_insert or job_id in self._chunks or job_id in self._finishing:
            return
        finish = self._answer_before_storing(context, job_id, message.result)
        if finish is not None:
            finish.early = True

    async def on_job_message(self, context: LiveContext, message: Message) -> None:
        unstored = self._before_insert.get(getattr(message, "job_id", ""))
        if unstored is not None:  # its insert is due or under way (other jobs' reports go on)
            unstored.reports.append(message)
            unstored.due.set()
            return
        await self._handle_report(context, message)

    async def _reports_after_insert(self, context: LiveContext, job_id: str, *, inline: bool) -> None:
        """The job's insert is over: its driver's reports go straight through from now on, after
        those that came meanwhile, handled here (a sync request waits for what they say) or in
        the background."""
        unstored = self._before_insert.get(job_id)
        if unstored is None or not unstored.reports:
            self._before_insert.pop(job_id, None)
        elif inline:
            await self._report_held(context, job_id)
        else:
            self._spawn(self._report_held(context, job_id))

    async def _report_held(self, context: LiveContext, job_id: str) -> None:
        """Handle, in order, the reports that came while the job was being inserted, and any
        that come meanwhile; then the job's reports go straight through again."""
        held = self._before_insert[job_id].reports
        while held:
            message = held.pop(0)
            try:
                await self._handle_report(context, message)
            except asyncio.CancelledError:
                # The request handling them is cancelled (the server stops): the rest, this one
                # again included (its changes are compare-and-set), goes on in the background.
                held.insert(0, message)
                self._spawn(self._report_held(context, job_id))
                raise
            except Exception:  # as the bus does: one report that fails does not stop the rest
                log.exception("bus_message_handling_failed", message_type=message.TYPE)
        del self._before_insert[job_id]

    async def _handle_report(self, context: LiveContext, message: Message) -> None:
        try:
            await self._on_job_message(context, message)
        except StoreUnavailable as error:
            # The driver said it once; the store must hear it when it is back. Later messages go
            # on meanwhile (their compare-and-set makes the order harmless).
            log.warning("job_report_deferred", message_type=message.TYPE, error=error.message)
            self._spawn(self._retry_report(context, message))

    async def _retry_report(self, context: LiveContext, message: Message) -> None:
        delay_s = 0.5
        while True:
            await asyncio.sleep(delay_s)
            try:
                await self._on_job_message(context, message)
            except StoreUnavailable:
                delay_s = min(delay_s * 2, 10.0)
                continue
            log.info("job_report_recorded", message_type=message.TYPE)
            return

    async def _record_running(self, job_id: str) -> None:
        delay_s = 0.5
        while True:
            try:
                await self._store.update_job(job_id, JobState.RUNNING)
                return
            except StoreUnavailable:
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 10.0)

    async def close(self) -> None:
        """Store the jobs sent but not stored yet and the answered finishes, then stop deferred
        reports and callbacks still retrying (the store is closing)."""
        for unstored in self._before_insert.values():
            unstored.due.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_STORE_TIMEOUT_S):
                await self._finishes_stored()
        for task in list(self._tasks):
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        if results:
            log.warning("background_work_abandoned", count=len(results))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_job_message(self, context: LiveContext, message: Message) -> None:
        if isinstance(message, JobFinished):
            await self._on_finished(context, message)  # acknowledges it once it is stored
        elif isinstance(message, JobStarted):
            # Not awaited: the job's next report need not wait for this write, and if it overtakes
            # it (FINISHED first), the compare-and-set turns the late RUNNING into a no-op.
            self._spawn(self._record_running(message.job_id))
            waiter = self._waiters.get(message.job_id)
            if waiter is not None and not waiter.started.done():
                waiter.started.set_result(None)
        elif isinstance(message, JobResultChunk):
            self._chunks.setdefault(message.job_id, []).append(message.data)
        elif isinstance(message, JobFailed):
            context.job_ids.discard(message.job_id)
            await self._fail(message.job_id, message.error, kind=message.kind)
            self._acknowledge(context, message.job_id)
            await self._after_job(context, failed=True)
        elif isinstance(message, JobKilled):
            context.job_ids.discard(message.job_id)
            await self._finalise(message.job_id, JobState.KILLED, killed_error(message.job_id))
            self._acknowledge(context, message.job_id)
            await self._after_job(context, failed=False)

    def _acknowledge(self, context: LiveContext, job_id: str) -> None:
        """The report is stored: the driver may forget it."""
        with contextlib.suppress(BusError):
            self._contexts.send(context, JobReportAck(job_id=job_id))

    async def _on_finished(self, context: LiveContext, message: JobFinished) -> None:
        context.job_ids.discard(message.job_id)
        chunks = self._chunks.get(message.job_id)
        payload = b"".join([*chunks, message.result]) if chunks else message.result
        finish = self._finishing.get(message.job_id)  # answered already: store it now
        if finish is not None and finish.early:  # … unless answered just now, by answer_early
            finish.early = False
            self._spawn(self._store_answered(context, message, finish))
            await self._start_queued(context)  # its slot is free
            return
        if finish is None:
            finish = self._answer_before_storing(context, message.job_id, payload)
            if finish is not None:
                self._spawn(self._store_answered(context, message, finish))
                await self._start_queued(context)  # its slot is free
                return
        # One transaction: a killed job gets no result, and a FINISHED job always has one.
        try:
            record = await self._store.finish_job(
                message.job_id, payload, end_time=finish.record.end_time if finish else None
            )
        finally:
            if finish is not None and not finish.stored.done():
                finish.stored.set_result(None)
        self._finishing.pop(message.job_id, None)
        self._chunks.pop(message.job_id, None)  # not before: a store outage retries with them
        if finish is not None and record is None:  # cannot be: nothing else ends it meanwhile
            log.error("answered_job_not_stored", job_id=message.job_id)
        waiter = self._waiters.get(message.job_id)
        if record is not None and waiter is not None and finish is None:
            _wake(waiter, record, payload)
            await asyncio.sleep(0)  # a sync request waiting for the result answers before the rest
        if record is not None:
            log.info("job_ended", job_id=message.job_id, state=JobState.FINISHED.value)
            self._call_back(record, payload)
        await self._release(message.job_id, record, payload if record is not None else None)
        await self._after_job(context, failed=False)
        self._acknowledge(context, message.job_id)

    def _answer_before_storing(self, context: LiveContext, job_id: str, payload: bytes) -> _Finish | None:
        """Wake the sync request waiting for this finished job now, ahead of the store write
        (which costs a commit: a database round trip with PostgreSQL), when nothing can contradict
        the answer; returns what the write must then store."""
        waiter = self._waiters.get(job_id)
        if waiter is None or not waiter.sync or waiter.done.done():
            return None
        if job_id in self._contested or context.id in self._contested:
            return None
        record = waiter.job.finished(utc_now())
        finish = _Finish(record, payload, asyncio.get_running_loop().create_future())
        self._finishing[job_id] = finish
        _wake(waiter, record, payload)
        return finish

    async def _store_answered(self, context: LiveContext, message: JobFinished, finish: _Finish) -> None:
        """Store an answered finish, and do the rest of a job's end (acknowledgement, log line,
        callback, an ad-hoc context's stop), once ``finish-store-delay`` has passed or something
        needs it stored: a client that sends its next job as soon as it has the last answer gets
        that job to its driver first."""
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.finish_store_delay_s):
                    await finish.hurry.wait()
            await self._handle_report(context, message)
        finally:
            if not finish.stored.done():  # cancelled (the server stops): nobody waits in vain
                finish.stored.set_result(None)

    async def _finishes_stored(self, job_ids: Sequence[str] | None = None) -> None:
        """Wait until the answered finishes of ``job_ids`` (default: all) have been written, or
        have failed to be (a write that failed is retried; the job stays in ``_finishing``)."""
        pending = []
        for job_id, finish in self._finishing.items():
            if job_ids is None or job_id in job_ids:
                finish.hurry.set()
                pending.append(finish.stored)
        if pending:
            await asyncio.wait(pending)

    async def _fail(self, job_id: str, error: ErrorMap, *, kind: str = FAILURE_ERROR) -> None:
        waiter = self._waiters.get(job_id)
        if waiter is not None and not waiter.started.done() and kind != FAILURE_ERROR:
            # Refused before it ran (unknown class, bad package, …): the request gets a 4xx.
            waiter.started.set_exception(rejection(kind, error))
            waiter.started.exception()  # retrieved here so an unawaited future does not warn
        await self._finalise(job_id, JobState.ERROR, error)

    async def _finalise(self, job_id: str, target: JobState, error: ErrorMap | None) -> None:
        record = await self._store.update_job(job_id, target, error=error)
        if record is not None:
            log.info("job_ended", job_id=job_id, state=target.value)
            self._call_back(record, None)
        await self._release(job_id, record, None)

    def _call_back(self, record: JobRecord, result: bytes | None) -> None:
        body = callback_body(record, result) if record.callback_url else None
        if body is not None and record.callback_url:
            self._spawn(deliver(record.callback_url, body, record.id, self._callback_policy))

    async def _release(self, job_id: str, record: JobRecord | None, result: bytes | None) -> None:
        """Wake whoever waits for this job, and end its ad-hoc context."""
        waiter = self._waiters.pop(job_id, None)
        if waiter is None:
            return
        if record is None:  # it was already final: report what is stored
            record = await self._store.get_job(job_id)
            if record is not None and record.state is JobState.FINISHED:
                result = await self._store.get_result(job_id)
        _wake(waiter, record, result)
        if waiter.adhoc_context is not None:
            await self._contexts.stop(waiter.adhoc_context)

    async def _after_job(self, context: LiveContext, *, failed: bool) -> None:
        if failed and stops_on_job_error(context.record.config):
            await self._contexts.stop(context)
        await self._start_queued(context)
        await self._end_idle_adhoc(context)

    async def _end_idle_adhoc(self, live: LiveContext) -> None:
        """An ad-hoc context whose job is over ends, also when no request waits for it (its job
        was re-attached after a server restart)."""
        if not live.job_ids and not live.queue:
            await self._end_adhoc(live)

    async def _end_adhoc(self, live: LiveContext) -> None:
        if live.record.is_adhoc:
            await self._contexts.stop(live)

    async def on_context_ended(self, context: LiveContext, message: str) -> None:
        """Every unfinished job of a context that ended (or is ending) becomes ERROR."""
        error = error_map(
            message, "spark.jobserver.ContextTerminatedException" if "Unexpected" in message else ""
        )
        context.queue.clear()
        for unstored in self._before_insert.values():  # not in the store yet: failed once it is
            if unstored.context_id == context.id:
                unstored.ended = error
                unstored.due.set()
        with self._contesting(context.id):
            await self._finishes_stored()
            for job in await self._store.jobs_in_context(context.id, ACTIVE_JOB_STATES):
                if job.id not in self._finishing:  # it finished; only its store write is owed
                    await self._fail(job.id, error)
        context.job_ids.clear()

    @contextlib.contextmanager
    def _contesting(self, key: str) -> Iterator[None]:
        """While a final state of job (or context) ``key`` is written outside its driver's
        reports, a finish is not answered before it is stored."""
        self._contested[key] += 1
        try:
            yield
        finally:
            self._contested[key] -= 1
            if not self._contested[key]:
                del self._contested[key]

    # --- drivers that restart or rejoin ----------------------------------------------------------

    async def on_context_restarting(self, context: LiveContext, reason: str) -> None:
        """Supervise: the driver died and another is on its way; what it ran runs again then."""
        for job_id in sorted(context.job_ids):
            self._chunks.pop(job_id, None)
            if await self._store.update_job(job_id, JobState.RESTARTING) is not None:
                log.info("job_restarting", job_id=job_id, context_id=context.id, reason=reason)
        context.job_ids.clear()

    async def on_context_restarted(self, context: LiveContext) -> None:
        restarting = await self._store.jobs_in_context(context.id, frozenset({JobState.RESTARTING}))
        await self._resubmit(context, restarting)
        await self._start_queued(context)

    async def on_driver_rejoined(
        self, context: LiveContext, running_job_ids: list[str], held_job_ids: list[str]
    ) -> None:
        """After a server restart: the driver's running jobs hold its slots again, its held final
        reports follow, and jobs it never received (queued or in flight) are sent again."""
        running, held = set(running_job_ids), set(held_job_ids)
        context.job_ids.update(running)
        lost = []
        for job in await self._store.jobs_in_context(context.id, ACTIVE_JOB_STATES):
            if job.id in running:
                if job.state is JobState.STARTED:
                    self._spawn(self._record_running(job.id))
            elif job.id not in held:
                lost.append(job)
        await self._resubmit(context, lost)
        if not held:  # else the held report ends it when it arrives
            await self._end_idle_adhoc(context)

    async def _resubmit(self, context: LiveContext, jobs: Sequence[JobRecord]) -> None:
        for job in sorted(jobs, key=lambda job: job.start_time):
            try:
                start = await self._start_message(job)
            except NotFound as error:
                await self._finalise(job.id, JobState.ERROR, error_map(error.message))
                continue
            log.info("job_resubmitted", job_id=job.id, context_id=context.id, state=job.state.value)
            if job.id in context.queue or job.id in context.job_ids:
                continue
            if len(context.job_ids) < self._settings.max_jobs_per_context:
                context.job_ids.add(job.id)
                await self._send_start(context, start)
            else:
                context.queue[job.id] = start

    async def _start_message(self, job: JobRecord) -> StartJob:
        """The StartJob of a stored job, as it was first sent."""
        posted = await self._store.get_job_config(job.id) or {}
        binaries = await self._store.get_binaries(job.binary_ids)
        if len(binaries) != len(set(job.binary_ids)):
            raise NotFound(f"a binary of job {job.id} no longer exists")
        return StartJob(
            job_id=job.id,
            main_class=job.class_path,
            packages=await self._packages(binaries, list(job.uris)),
            config_json=json.dumps(posted).encode(),
        )

    # --- queries and kill ------------------------------------------------------------------------

    async def get(self, job_id: str) -> tuple[JobRecord, bytes | None]:
        finish = self._finishing.get(job_id)
        if finish is not None:  # answered; its store write is under way (or waits for the store)
            return finish.record, finish.result
        job = await self._store.get_job(job_id)
        if job is None:
            raise NotFound(f"No such job ID {job_id}")
        result = await self._store.get_result(job_id) if job.state is JobState.FINISHED else None
        return job, result

    async def list(self, limit: int, status: str | None) -> list[JobRecord]:
        await self._finishes_stored()
        state: JobState | None = None
        if status is not None:
            try:
                state = JobState(status.upper())
            except ValueError:
                return []
        jobs = await self._store.list_jobs(limit, state)
        if not self._finishing:
            return jobs
        # A write that failed and is retried until the store takes it: memory knows better.
        answered = [self._finishing[job.id].record if job.id in self._finishing else job for job in jobs]
        if state is None:
            return answered
        listed = {job.id for job in answered}
        answered += [finish.record for finish in self._finishing.values() if finish.record.id not in listed]
        answered = [job for job in answered if job.state is state]
        answered.sort(key=lambda job: job.start_time, reverse=True)  # as the store orders them
        return answered[:limit]

    async def config(self, job_id: str) -> Mapping[str, Any]:
        config = await self._store.get_job_config(job_id)
        if config is None:
            raise NotFound(f"No such job ID {job_id}")
        return config

    async def kill(self, job_id: str) -> JobRecord:
        """DELETE /jobs/<id>: the job becomes KILLED now; its Spark work is cancelled."""
        with self._contesting(job_id):
            await self._finishes_stored([job_id])
            if job_id in self._finishing:  # it finished, and was answered so: nothing to kill
                raise NotFound(f"No running job with ID {job_id}")
            return await self._kill(job_id)

    async def _kill(self, job_id: str) -> JobRecord:
        job = await self._store.get_job(job_id)
        if job is None:
            raise NotFound(f"No such job ID {job_id}")
        if job.state.is_final:
            if job.state is JobState.ERROR:
                return job
            raise NotFound(f"No running job with ID {job_id}")
        killed = await self._store.update_job(job_id, JobState.KILLED, error=killed_error(job_id))
        if killed is None:  # it ended meanwhile
            return await self._kill(job_id)
        log.info("job_killed", job_id=job_id, context_id=job.context_id)
        live = self._contexts.live(job.context_id)
        if live is not None:
            # The slot is free as soon as the job reads KILLED; the driver has spare threads for
            # the moment its cancelled thread takes to unwind.
            queued = live.queue.pop(job_id, None) is not None  # a killed queued job never starts
            live.job_ids.discard(job_id)
            if not queued:
                self._contexts.note_killed(live, job_id)
                with contextlib.suppress(BusError):
                    self._contexts.send(live, KillJob(job_id=job_id))
        await self._finalise(job_id, JobState.KILLED, None)
        if live is not None:
            await self._start_queued(live)
        return killed
