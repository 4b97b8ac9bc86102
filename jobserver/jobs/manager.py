"""Jobs: from a POST /jobs to its answer, and the queries and kills that follow.

The JobManager resolves what to run (sjs-contract §2.3: cp/mainClass or appName/classPath, from
query or config), picks or creates the context, admits the job to a slot or the context's queue,
and stores it. A job that can start at once is sent to its driver before it is stored: the insert
is held (``WriteBehindStore.hold_insert``) and written ``start-store-delay`` later for a sync job,
at once for an async one (its 202 waits for it), and at once whenever anything about the job needs
the store first; if the insert fails, the job is killed and the request fails. What drivers then
report is ``DriverReports``' business; both share the job's way in and out (``JobFlow``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from driver.protocol import KillJob, StartJob
from jobserver.common import metrics
from jobserver.common.config import Settings, get_path, merge
from jobserver.common.errors import BadRequest, NotFound
from jobserver.common.records import BinaryRecord, JobRecord, utc_now
from jobserver.common.states import JobState
from jobserver.common.tasks import BackgroundTasks
from jobserver.contexts.live import LiveContext
from jobserver.contexts.manager import ContextManager
from jobserver.drivers.bus import BusError
from jobserver.jobs.flow import JobFlow
from jobserver.jobs.following import JobFollowing
from jobserver.jobs.reports import DriverReports
from jobserver.jobs.slots import Admission, Slots
from jobserver.jobs.submission import JobRequest, SubmitOutcome, is_uri, killed_error, what_to_run
from jobserver.jobs.waiters import Waiter, Waiters
from jobserver.storage.results import Result
from jobserver.storage.write_behind import WriteBehindStore

log = structlog.get_logger(__name__)

# How long a stopping server waits for held writes (a store that is down does not take them; the
# drivers hold their reports until it does).
CLOSE_STORE_TIMEOUT_S = 10.0


class JobManager:
    def __init__(
        self, settings: Settings, store: WriteBehindStore, contexts: ContextManager, tasks: BackgroundTasks
    ) -> None:
        self._settings = settings
        self._store = store
        self._contexts = contexts
        self._tasks = tasks
        self._slots = Slots(
            max_running=settings.max_jobs_per_context, max_queued=settings.max_queued_jobs_per_context
        )
        self._waiters = Waiters()
        self._flow = JobFlow(settings, store, contexts, self._slots, self._waiters, tasks)
        self._reports = DriverReports(settings, store, self._flow, self._slots, self._waiters, tasks)
        contexts.connect(self._reports)
        self.following = JobFollowing(store, self._flow.watch)  # logs, progress and events of a job

    # --- submission ----------------------------------------------------------------------------------

    async def submit(self, request: JobRequest) -> SubmitOutcome:
        if request.sql:  # kept with the posted config, so GET /jobs/<id>/config shows it
            request = dataclasses.replace(
                request, posted_config=merge(request.posted_config, {"sql": request.sql})
            )
        job_config = merge(self._settings.plain, request.posted_config)
        main_class, cp_entries = what_to_run(request, job_config)
        if request.callback_url:
            await self._flow.callbacks.targets.check(request.callback_url)
        binaries, uris = await self._resolve_cp(cp_entries)
        job_id = str(uuid.uuid4())
        context, pooled = await self._context_for(request, main_class, job_id)
        job = JobRecord(
            id=job_id,
            context_id=context.id,
            context_name="" if pooled else context.name,  # a pooled driver's jobs read <<ad-hoc>>
            class_path=main_class,
            state=JobState.STARTED,
            start_time=utc_now(),
            binary_ids=tuple(binary.id for binary in binaries),
            uris=tuple(uris),
            callback_url=request.callback_url,
            user=request.caller.user if request.caller else None,
        )
        try:
            start = await self._flow.start_message(job.id, main_class, binaries, uris, request.posted_config)
            admission = self._slots.admit(context.id, start, context_name=request.context or "ad-hoc")
        except BaseException:
            await self._flow.end_adhoc(context, job.id)
            raise
        adhoc = context if context.record.is_adhoc else None
        waiter = self._waiters.add(job, sync=request.sync, adhoc_context=adhoc)
        unreachable = await self._accept(context, job, start, admission, request)
        # Logged once the job is on its way: the line is work the driver need not wait for.
        log.info(
            "job_submitted",
            job_id=job.id,
            context_id=context.id,
            main_class=main_class,
            queued=admission is Admission.QUEUED,
        )
        if unreachable is not None:  # fails now that it is stored
            await self._flow.fail_unreachable(context, job.id, unreachable)
        if admission is Admission.QUEUED and not request.sync:  # accepted; its start may be far off
            return SubmitOutcome(job=job)
        timeout_s = (
            request.timeout_s if request.timeout_s is not None else self._settings.default_sync_timeout_s
        )
        return await self._await_outcome(job, waiter, request.sync, timeout_s)

    async def _accept(
        self, context: LiveContext, job: JobRecord, start: StartJob, admission: Admission, request: JobRequest
    ) -> BusError | None:
        """Send the job if it has a slot, and store it; if it is not stored after all, it is
        stopped and its slot given back. Returns why the driver could not be reached, if so."""
        try:
            insert = await self._store.hold_insert(job, request.posted_config)
            unreachable = self._flow.try_send(context, start) if admission is Admission.RUN else None
            sent = admission is Admission.RUN and unreachable is None
            # A sync job's answer waits for its insert anyway: written a little later (or at once
            # when its driver reports), the write keeps off the driver's way as it starts the job.
            await insert.write(within_s=self._settings.start_store_delay_s if sent and request.sync else 0.0)
        except BaseException:
            if self._slots.release(context.id, job.id) is Admission.RUN:
                with contextlib.suppress(BusError):
                    context.send(KillJob(job_id=job.id))
            self._waiters.pop(job.id)
            await self._flow.end_adhoc(context, job.id)
            raise
        return unreachable

    async def _await_outcome(
        self, job: JobRecord, waiter: Waiter, sync: bool, timeout_s: float
    ) -> SubmitOutcome:
        # Awaited directly, so the request resumes in the loop turn after the driver's report. Only
        # this request awaits the waiter's futures, so the timeout may cancel the one it waits for.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await (waiter.done if sync else waiter.started)
        started, done = waiter.started, waiter.done
        if started.done() and not started.cancelled():
            refusal = started.exception()
            if refusal is not None:
                raise refusal
        if sync and done.done() and not done.cancelled():
            final, result = done.result()
            return SubmitOutcome(job=final, result=result, completed=True)
        return SubmitOutcome(job=job)

    async def _context_for(
        self, request: JobRequest, main_class: str, job_id: str
    ) -> tuple[LiveContext, bool]:
        """The job's context, and whether it is a pooled driver."""
        if request.context:
            if request.pool:
                raise BadRequest("pool is for ad-hoc jobs (without context)")
            return await self._contexts.for_jobs(request.context, request.caller), False
        settings = get_path(request.posted_config, "spark.context-settings", {}) or {}
        if request.proxy_user:  # a client's to set only where client-settings allow it
            settings = merge(settings, {"spark.proxy.user": request.proxy_user})
        runs_as = request.run_as or request.proxy_user
        prefix = f"{runs_as}~" if runs_as else ""
        return await self._contexts.create_adhoc(
            f"{prefix}{uuid.uuid4()}-{main_class}",
            settings,
            job_id=job_id,
            pool=request.pool,
            caller=request.caller,
            proxy_user=request.run_as,
        )

    async def _resolve_cp(self, entries: Sequence[str]) -> tuple[list[BinaryRecord], list[str]]:
        binaries: list[BinaryRecord] = []
        uris: list[str] = []
        for entry in entries:
            if is_uri(entry):  # the driver reads file: and local: URIs itself, and fetches the rest
                uris.append(entry)
                continue
            binary = await self._store.latest_binary(entry)
            if binary is None:
                raise NotFound(f"appName {entry} not found")
            binaries.append(binary)
        return binaries, uris

    def listen_for_ends(self, listener: Callable[[str], None]) -> None:
        """``listener(job_id)`` once a job's end is stored (``JobFlow.listen_for_ends``)."""
        self._flow.listen_for_ends(listener)

    def occupancy(self) -> dict[str, tuple[int, int]]:
        """Jobs running and queued, by context id (for /metrics)."""
        return self._slots.occupancy()

    # --- queries and kill ------------------------------------------------------------------------------

    async def get(self, job_id: str) -> tuple[JobRecord, Result | None]:
        job = await self._existing(job_id)
        result = await self._store.get_result(job_id) if job.state is JobState.FINISHED else None
        return job, result

    async def list(self, limit: int, status: str | None) -> list[JobRecord]:
        state: JobState | None = None
        if status is not None:
            try:
                state = JobState(status.upper())
            except ValueError:
                return []
        return await self._store.list_jobs(limit, state)

    async def config(self, job_id: str) -> Mapping[str, Any]:
        config = await self._store.get_job_config(job_id)
        if config is None:
            raise NotFound(f"No such job ID {job_id}")
        return config

    async def kill(self, job_id: str) -> JobRecord:
        """DELETE /jobs/<id>: the job becomes KILLED now; its Spark work is cancelled. A job of a
        context a live peer runs is that peer's to kill (``ServedByPeer``: the request goes there)."""
        job = await self._existing(job_id)
        if not job.state.is_final:
            await self._contexts.check_served_here(job.context_id, job.context_name)
        job, killed = await self._mark_killed(job)
        if killed is None:  # it had ended: an ERROR is reported as such, anything else is not running
            if job.state is JobState.ERROR:
                return job
            raise NotFound(f"No running job with ID {job_id}")
        log.info("job_killed", job_id=job_id, context_id=job.context_id)
        metrics.job_ended(killed)
        context = self._contexts.live(job.context_id)
        # The slot is free as soon as the job reads KILLED; the driver has spare threads for the
        # moment its cancelled thread takes to unwind. A killed queued job never starts.
        if context is not None and self._slots.release(context.id, job_id) is not Admission.QUEUED:
            context.note_killed(job_id)
            with contextlib.suppress(BusError):
                context.send(KillJob(job_id=job_id))
        await self._flow.finalise(job_id, JobState.KILLED, None)
        if context is not None:
            await self._flow.start_queued(context)
        return killed

    async def _mark_killed(self, job: JobRecord) -> tuple[JobRecord, JobRecord | None]:
        """The job as read, and as killed (None when it had ended)."""
        job_id = job.id
        if not job.state.is_final:
            killed = await self._store.update_job(job_id, JobState.KILLED, error=killed_error(job_id))
            if killed is not None:
                return job, killed
            job = await self._existing(job_id)  # it ended between the read and the write
        return job, None

    async def _existing(self, job_id: str) -> JobRecord:
        job = await self._store.get_job(job_id)
        if job is None:
            raise NotFound(f"No such job ID {job_id}")
        return job

    async def close(self) -> None:
        await self._reports.close(CLOSE_STORE_TIMEOUT_S)

    def take_over_callbacks(self) -> None:
        """Deliver the stored callbacks nobody delivers (a previous or stopped server's), now and
        from time to time."""
        self._tasks.spawn(self._flow.callbacks.keep_taking_over(), name="callback-takeover")

    async def close_callbacks(self) -> None:
        """Once the background work is cancelled: what this server was delivering is left stored,
        free for the next server to take over."""
        await self._flow.callbacks.close()
