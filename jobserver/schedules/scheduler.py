"""The scheduler: schedules stored, and their runs started at their due times.

One task per server sleeps until the earliest due time (on the injectable ``Clock``), or until a
schedule changes or a run ends, and at most ``scheduler.refresh-interval`` (schedules a peer
changed). At a due time every server sharing the database may try: the server whose INSERT of the
run (schedule, due time) wins starts it, the others do nothing, and the schedule's next due time
moves on by compare-and-set. Due times that passed while no server ran (later than
``scheduler.misfire-grace``) are missed: ``catchUp: skip`` runs none of them, ``last`` runs the last
one once if it is no older than ``scheduler.max-catch-up``. A due time while the previous run
still goes is SKIPPED (``overlap: skip``) or QUEUED until it ends (``queue``).

A due time this server claimed but had not submitted when it stopped (CLAIMED, no job, no
workflow) is FAILED when it starts again: whether its work was accepted is not known, and a
claim left so would count as a run still going, deferring every later due time for ever.

A job in a named context can be submitted only by the server that runs the context, so a due time
of such a job is claimed only there: a server that finds the context run by a live peer leaves the
due time to that peer (and looks again after ``refresh-interval``, should the peer not claim it).
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import datetime
from collections.abc import Callable

import structlog

from jobserver.common.clock import Clock
from jobserver.common.config import Settings, merge
from jobserver.common.errors import Conflict, JobServerError, NotFound, ServedByPeer, StoreUnavailable
from jobserver.common.records import Caller, utc_now
from jobserver.common.scheduling import (
    CatchUp,
    Overlap,
    RunState,
    ScheduleRecord,
    ScheduleRun,
    WorkflowRecord,
)
from jobserver.common.tasks import BackgroundTasks
from jobserver.contexts.manager import ContextManager
from jobserver.jobs.manager import JobManager
from jobserver.jobs.submission import what_to_run
from jobserver.schedules.timing import ScheduleSpec, last_due, next_due
from jobserver.storage.write_behind import WriteBehindStore
from jobserver.workflows.engine import Workflows, workflow_json
from jobserver.workflows.specs import (
    JobSpec,
    check_job,
    job_request,
    job_spec_json,
    parse_job,
    parse_workflow,
)

log = structlog.get_logger(__name__)

ACTIVE_RUN_STATES = (RunState.CLAIMED, RunState.STARTED)
INTERRUPTED = "the server stopped after claiming this due time, before submitting its run"
DEAD_CLAIMER = "the server that claimed this due time went silent before submitting its run (peers.timeout)"


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        store: WriteBehindStore,
        jobs: JobManager,
        workflows: Workflows,
        tasks: BackgroundTasks,
        clock: Clock,
        contexts: ContextManager,
    ) -> None:
        self._settings = settings
        self._store = store
        self._jobs = jobs
        self._contexts = contexts
        self._workflows = workflows
        self._tasks = tasks
        self._clock = clock
        self._wake = asyncio.Event()
        self._run_jobs: set[str] = set()  # jobs of runs this server started, while they run
        self._peer_claims_checked_at = 0.0  # loop time of the last look for dead servers' claims
        jobs.listen_for_ends(self._job_ended)
        workflows.listen_for_ends(self._workflow_ended)

    # --- requests ----------------------------------------------------------------------------------

    async def create(
        self, spec: ScheduleSpec, *, caller: Caller | None, run_as: str | None
    ) -> ScheduleRecord:
        record = await self._record(spec, caller, run_as)
        if not await self._store.insert_schedule(record):
            raise Conflict(f"schedule {spec.name} exists")
        log.info("schedule_created", schedule=spec.name, cron=spec.cron, time_zone=spec.time_zone)
        self._wake.set()
        return record

    async def replace(
        self, spec: ScheduleSpec, *, caller: Caller | None, run_as: str | None
    ) -> ScheduleRecord:
        existing = await self.get(spec.name)
        record = dataclasses.replace(await self._record(spec, caller, run_as), created_at=existing.created_at)
        if not await self._store.replace_schedule(record):
            raise NotFound(f"No such schedule {spec.name}")
        log.info("schedule_replaced", schedule=spec.name)
        self._wake.set()
        return record

    async def _record(self, spec: ScheduleSpec, caller: Caller | None, run_as: str | None) -> ScheduleRecord:
        if isinstance(spec.target, JobSpec):
            request = await check_job(spec.target)
            what_to_run(request, merge(self._settings.plain, request.posted_config))
            target = {"job": job_spec_json(spec.target)}
        else:
            await self._workflows.check(spec.target)
            target = {"workflow": workflow_json(spec.target)}
        now = self._clock.now()
        return ScheduleRecord(
            name=spec.name,
            cron=spec.cron,
            time_zone=spec.time_zone,
            target=target,
            catch_up=spec.catch_up,
            overlap=spec.overlap,
            paused=spec.paused,
            next_due_at=next_due(spec.cron, spec.time_zone, now),
            created_at=utc_now(),
            user=caller.user if caller else None,
            acts_as=tuple(sorted(caller.acts_as)) if caller else (),
            run_as=run_as,
        )

    async def get(self, name: str) -> ScheduleRecord:
        schedule = await self._store.get_schedule(name)
        if schedule is None:
            raise NotFound(f"No such schedule {name}")
        return schedule

    async def list(self) -> builtins.list[ScheduleRecord]:
        return await self._store.list_schedules()

    async def delete(self, name: str) -> None:
        if not await self._store.delete_schedule(name):
            raise NotFound(f"No such schedule {name}")
        log.info("schedule_deleted", schedule=name)

    async def set_paused(self, name: str, paused: bool) -> ScheduleRecord:
        """Pause, or resume from now on: the due times while it was paused do not run."""
        schedule = await self.get(name)
        changed = dataclasses.replace(
            schedule,
            paused=paused,
            next_due_at=next_due(schedule.cron, schedule.time_zone, self._clock.now()),
        )
        if not await self._store.replace_schedule(changed):
            raise NotFound(f"No such schedule {name}")
        log.info("schedule_paused" if paused else "schedule_resumed", schedule=name)
        self._wake.set()
        return changed

    async def runs(self, name: str, limit: int) -> builtins.list[ScheduleRun]:
        await self.get(name)
        return await self._store.list_runs(name, limit)

    # --- the loop ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._settings.scheduler_enabled:
            self._tasks.spawn(self._run(), name="scheduler")

    async def _run(self) -> None:
        try:
            await self._fail_interrupted_claims()
        except StoreUnavailable as error:
            log.warning("schedule_claims_not_recovered", error=error.message)
        while True:
            self._wake.clear()
            try:
                wake_at = await self._tick()
            except StoreUnavailable as error:
                log.warning("scheduler_tick_failed", error=error.message)
                wake_at = self._clock.now() + datetime.timedelta(
                    seconds=self._settings.scheduler_refresh_interval_s
                )
            sleep = asyncio.ensure_future(self._clock.sleep_until(wake_at))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleep, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                woken.cancel()

    async def _fail_interrupted_claims(self) -> None:
        """At start-up, before any claim of this process: this server's claims still CLAIMED are
        an earlier process's, which stopped before submitting them."""
        await self._fail_claims(lambda server_id: server_id == self._settings.server_id, INTERRUPTED)

    async def _fail_claims_of_dead_peers(self) -> None:
        """Every ``peers.timeout``: claims still CLAIMED by a server silent for that long (or gone
        from the store) will never be submitted, and would hold their schedule's later due times
        (a run still going) until that server came back: they are FAILED. Any live server may do
        it; the update is a compare-and-set on CLAIMED."""
        now = asyncio.get_running_loop().time()
        if now - self._peer_claims_checked_at < self._settings.peer_timeout_s:
            return
        self._peer_claims_checked_at = now
        silent_since = utc_now() - datetime.timedelta(seconds=self._settings.peer_timeout_s)
        live = {
            server.server_id
            for server in await self._store.list_servers()
            if server.heartbeat_time >= silent_since
        }
        live.add(self._settings.server_id)
        await self._fail_claims(lambda server_id: server_id not in live, DEAD_CLAIMER)

    async def _fail_claims(self, stopped: Callable[[str], bool], reason: str) -> None:
        for schedule in await self._store.list_schedules():
            for run in await self._store.list_runs(schedule.name, 1_000, states=[RunState.CLAIMED]):
                if stopped(run.claimed_by) and await self._store.update_run(
                    schedule.name, run.due_at, RunState.FAILED, error=reason
                ):
                    log.warning(
                        "schedule_run_interrupted",
                        schedule=schedule.name,
                        due_at=run.due_at.isoformat(),
                        claimed_by=run.claimed_by,
                    )

    async def _tick(self) -> datetime.datetime:
        """Deal with every schedule due now; the time to look again."""
        await self._fail_claims_of_dead_peers()
        now = self._clock.now()
        wake_at = now + datetime.timedelta(seconds=self._settings.scheduler_refresh_interval_s)
        for schedule in await self._store.list_schedules():
            if schedule.paused:
                continue
            # Only a schedule with something to start now costs the look-up of its context.
            busy = schedule.next_due_at <= now or schedule.overlap is Overlap.QUEUE
            if busy and await self._left_to_peer(schedule):
                continue
            if schedule.next_due_at <= now:
                schedule = await self._due(schedule, now)
            if schedule.overlap is Overlap.QUEUE:
                await self._start_queued(schedule)
            wake_at = min(wake_at, schedule.next_due_at)
        return wake_at

    async def _left_to_peer(self, schedule: ScheduleRecord) -> bool:
        """Whether the schedule's job names a context that a live peer runs (that peer's to start:
        this server could not submit it there)."""
        name = schedule.target.get("job", {}).get("context")
        if not name:
            return False
        try:
            record = await self._contexts.get(name)
            await self._contexts.check_served_here(record.id, record.name)
        except ServedByPeer:
            return True
        except JobServerError:  # none, or its owner is silent: the run's submission says so
            return False
        return False

    async def _due(self, schedule: ScheduleRecord, now: datetime.datetime) -> ScheduleRecord:
        due = last_due(schedule.cron, schedule.time_zone, now)
        late_s = (now - due).total_seconds()
        missed = due > schedule.next_due_at or late_s > self._settings.scheduler_misfire_grace_s
        runs = not missed or (
            schedule.catch_up is CatchUp.LAST and late_s <= self._settings.scheduler_max_catch_up_s
        )
        # Claimed before the next due time moves on: a server that stops in between leaves the
        # claim, and the next server's claim of the same due time loses to it.
        if runs and await self._store.claim_run(
            ScheduleRun(schedule.name, due, RunState.CLAIMED, self._settings.server_id)
        ):
            log.info("schedule_run_claimed", schedule=schedule.name, due_at=due.isoformat(), missed=missed)
            await self._begin(schedule, due)
        elif missed:
            log.info("schedule_runs_missed", schedule=schedule.name, last_due_at=due.isoformat())
        following = next_due(schedule.cron, schedule.time_zone, max(due, now))
        await self._store.advance_schedule(schedule.name, from_due=schedule.next_due_at, to_due=following)
        return dataclasses.replace(schedule, next_due_at=following)

    async def _begin(self, schedule: ScheduleRecord, due: datetime.datetime) -> None:
        if await self._previous_still_running(schedule, due):
            target = RunState.SKIPPED if schedule.overlap is Overlap.SKIP else RunState.QUEUED
            await self._store.update_run(schedule.name, due, target)
            log.info(
                "schedule_run_deferred", schedule=schedule.name, due_at=due.isoformat(), state=target.value
            )
            return
        self._tasks.spawn(self._submit(schedule, due), name=f"schedule-{schedule.name}")

    async def _previous_still_running(self, schedule: ScheduleRecord, due: datetime.datetime) -> bool:
        for run in await self._store.list_runs(schedule.name, 10, states=ACTIVE_RUN_STATES):
            if run.due_at != due and (
                run.state is RunState.CLAIMED or run.outcome in ("STARTED", "RUNNING", "RESTARTING")
            ):
                return True
        return False

    async def _start_queued(self, schedule: ScheduleRecord) -> None:
        queued = await self._store.list_runs(schedule.name, 1_000, states=[RunState.QUEUED])
        if not queued or await self._previous_still_running(schedule, queued[-1].due_at):
            return
        oldest = queued[-1]
        if await self._store.update_run(schedule.name, oldest.due_at, RunState.CLAIMED):
            self._tasks.spawn(self._submit(schedule, oldest.due_at), name=f"schedule-{schedule.name}")

    async def _submit(self, schedule: ScheduleRecord, due: datetime.datetime) -> None:
        caller = Caller(schedule.user, frozenset(schedule.acts_as)) if schedule.user else None
        try:
            if "workflow" in schedule.target:
                workflow = await self._workflows.start(
                    parse_workflow(schedule.target["workflow"]),
                    caller=caller,
                    run_as=schedule.run_as,
                    schedule_name=schedule.name,
                )
                await self._store.update_run(schedule.name, due, RunState.STARTED, workflow_id=workflow.id)
            else:
                request = await job_request(
                    parse_job(schedule.target["job"]), caller=caller, run_as=schedule.run_as
                )
                outcome = await self._jobs.submit(request)
                self._run_jobs.add(outcome.job.id)
                await self._store.update_run(schedule.name, due, RunState.STARTED, job_id=outcome.job.id)
        except JobServerError as error:
            await self._store.update_run(schedule.name, due, RunState.FAILED, error=error.message)
            log.warning(
                "schedule_run_failed", schedule=schedule.name, due_at=due.isoformat(), error=error.message
            )
            self._wake.set()  # a queued run may start now
            return
        log.info("schedule_run_started", schedule=schedule.name, due_at=due.isoformat())

    def _job_ended(self, job_id: str) -> None:
        if job_id in self._run_jobs:
            self._run_jobs.discard(job_id)
            self._wake.set()  # a queued run may start now

    def _workflow_ended(self, workflow: WorkflowRecord) -> None:
        if workflow.schedule_name is not None:
            self._wake.set()
