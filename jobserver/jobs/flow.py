"""How a job is sent to its driver, and how its end is recorded and answered.

Shared by the submission (``JobManager``) and the driver's reports (``DriverReports``): the job's
packages and StartJob, a send that fails when the driver cannot be reached, the queue's next job
when a slot frees, and a job's end: the compare-and-set state change, the waiting request's answer,
the callback, and the end of an ad-hoc context whose job is over.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from driver.protocol import FAILURE_ERROR, JobPackage, StartJob, package_fields
from jobserver.common import metrics
from jobserver.common.config import Settings
from jobserver.common.errors import ErrorMap, NotFound, error_map
from jobserver.common.records import BinaryRecord, JobRecord
from jobserver.common.states import JobState
from jobserver.common.tasks import BackgroundTasks
from jobserver.contexts.live import LiveContext
from jobserver.contexts.manager import ContextManager
from jobserver.drivers.bus import BusError
from jobserver.jobs.callback_queue import CallbackQueue
from jobserver.jobs.slots import Slots
from jobserver.jobs.submission import rejection, stops_on_job_error
from jobserver.jobs.waiters import Waiters
from jobserver.jobs.watch import JobWatch
from jobserver.storage.results import Result
from jobserver.storage.write_behind import WriteBehindStore

log = structlog.get_logger(__name__)


class JobFlow:
    def __init__(
        self,
        settings: Settings,
        store: WriteBehindStore,
        contexts: ContextManager,
        slots: Slots,
        waiters: Waiters,
        tasks: BackgroundTasks,
    ) -> None:
        self._settings = settings
        self._store = store
        self._contexts = contexts
        self._slots = slots
        self._waiters = waiters
        self._tasks = tasks
        self.callbacks = CallbackQueue(settings, store, tasks)
        self.watch = JobWatch()  # progress, and news for those following a job
        self._end_listeners: list[Callable[[str], None]] = []

    def listen_for_ends(self, listener: Callable[[str], None]) -> None:
        """``listener(job_id)`` after each job's end is stored (workflows and schedules advance
        on it); it must not block: it is called on the job path."""
        self._end_listeners.append(listener)

    # --- starts ------------------------------------------------------------------------------------

    async def start_message(
        self,
        job_id: str,
        main_class: str,
        binaries: Sequence[BinaryRecord],
        uris: Sequence[str],
        posted_config: Mapping[str, Any],
    ) -> StartJob:
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
        return StartJob(
            job_id=job_id,
            main_class=main_class,
            packages=packages,
            config_json=json.dumps(posted_config).encode(),
        )

    async def stored_start_message(self, job: JobRecord) -> StartJob:
        """The StartJob of a stored job, as it was first sent."""
        posted = await self._store.get_job_config(job.id) or {}
        binaries = await self._store.get_binaries(job.binary_ids)
        if len(binaries) != len(set(job.binary_ids)):
            raise NotFound(f"a binary of job {job.id} no longer exists")
        return await self.start_message(job.id, job.class_path, binaries, job.uris, posted)

    def try_send(self, context: LiveContext, start: StartJob) -> BusError | None:
        """Send a job that holds a slot; if its driver cannot be reached, free the slot, say why."""
        try:
            context.send(start)
        except BusError as error:
            self._slots.release(context.id, start.job_id)
            return error
        return None

    async def send(self, context: LiveContext, start: StartJob) -> None:
        error = self.try_send(context, start)
        if error is not None:
            await self.fail_unreachable(context, start.job_id, error)

    async def fail_unreachable(self, context: LiveContext, job_id: str, error: BusError) -> None:
        await self.fail(job_id, error_map(f"Context {context.name} is not reachable: {error}"))

    async def start_queued(self, context: LiveContext) -> None:
        """Fill the context's free slots from its queue, oldest job first."""
        while context.accepts_jobs:
            start = self._slots.next_to_start(context.id)
            if start is None:
                return
            log.info("job_dequeued", job_id=start.job_id, context_id=context.id)
            await self.send(context, start)

    # --- ends --------------------------------------------------------------------------------------

    async def fail(self, job_id: str, error: ErrorMap, *, kind: str = FAILURE_ERROR) -> None:
        waiter = self._waiters.get(job_id)
        if waiter is not None and kind != FAILURE_ERROR:
            waiter.refuse(rejection(kind, error))
        await self.finalise(job_id, JobState.ERROR, error)

    async def finalise(self, job_id: str, target: JobState, error: ErrorMap | None) -> None:
        record = await self._store.update_job(job_id, target, error=error)
        if record is not None:
            log.info("job_ended", job_id=job_id, state=target.value)
            metrics.job_ended(record)
            self.call_back(record, None)
        await self.release(job_id, record, None)

    def call_back(self, record: JobRecord, result: Result | None) -> None:
        """``record``'s end is stored (with its pending callback, if it gets one)."""
        self.callbacks.job_ended(record, result)

    async def release(self, job_id: str, record: JobRecord | None, result: Result | None) -> None:
        """Wake whoever waits for this job (``record`` None: it was final already, say what is
        stored), and end its ad-hoc context."""
        self.watch.ended(job_id)
        for listener in self._end_listeners:
            listener(job_id)
        waiter = self._waiters.pop(job_id)
        if waiter is None:
            return
        if record is None:
            record = await self._store.get_job(job_id)
            if record is not None and record.state is JobState.FINISHED:
                result = await self._store.get_result(job_id)
        waiter.wake(record, result)
        if waiter.adhoc_context is not None:
            killed = record is not None and record.state is JobState.KILLED
            await self.end_adhoc(waiter.adhoc_context, job_id, killed=killed)

    def answered(self, context: LiveContext, job_id: str) -> None:
        """A sync job's answer is out before its finish is stored: a pooled driver goes back to
        its pool now, ready for the client's next job (an ad-hoc driver of its own still stops
        with the rest of the job's end)."""
        if context.record.is_adhoc and self._contexts.pools.is_pooled(context):
            self._contexts.pools.give_back(context, job_id)

    async def after_job(self, context: LiveContext, *, failed: bool) -> None:
        """A job of ``context`` ended: the context stops if its settings say so, the next queued
        job starts, and an ad-hoc context whose job is over ends."""
        if failed and stops_on_job_error(context.record.config):
            await self._contexts.stop(context)
        await self.start_queued(context)
        await self.end_idle_adhoc(context)

    async def end_idle_adhoc(self, context: LiveContext) -> None:
        """Also when no request waits for its job (re-attached after a server restart)."""
        if self._slots.idle(context.id):
            await self.end_adhoc(context)

    async def end_adhoc(
        self, context: LiveContext, job_id: str | None = None, *, killed: bool = False
    ) -> None:
        """``job_id`` None: no job is left (a pooled driver then goes back only after a rejoin;
        a job's own end gives it back, and never another job's)."""
        if context.record.is_adhoc:
            await self._contexts.end_adhoc(context, job_id, killed=killed)
