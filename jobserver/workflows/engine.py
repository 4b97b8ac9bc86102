"""Workflows run: each step's job is submitted once the steps it comes after have ended, driven
by job ends (``JobManager.listen_for_ends``), never by polling the store in a loop.

The store holds every workflow's and step's state, so a restarted server picks up its running
workflows (``recover``): steps whose jobs went on in re-attached drivers end as usual, steps whose
jobs ended while it was down advance the workflow at once, and a step it was starting when it
stopped (claimed, no job id stored) is ERROR: whether its job was accepted is not known. A
check every ``workflows.reconcile-interval`` catches ends this server did not hear (a job a peer
server ended). A step is claimed (PENDING -> STARTING, compare-and-set) before its job is
submitted, so it is submitted once.

A server that never comes back leaves its workflows to the peer that adopted its contexts
(``Peers``: the one server whose compare-and-set set the dead server's ``adopted_by``): every
``peers.heartbeat-interval`` each server moves to itself the running workflows of the servers it
adopted (``Store.adopt_workflows``, one statement) and takes them up as after a restart. A
server that finds one of its workflows owned by another lets go of it.

A step whose job names a context another live server runs (``ServedByPeer``) is submitted to that
server (``PeerCall``, given by the web layer: a signed request as the workflow's user), and a kill
of such a job goes there too; its end is seen at the next reconcile, since the job ends on the
peer.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import structlog

from jobserver.common.config import Settings, merge
from jobserver.common.errors import JobServerError, NotFound, ServedByPeer, StoreUnavailable, error_map
from jobserver.common.records import Caller, ErrorMap, utc_now
from jobserver.common.scheduling import StepRecord, StepState, WorkflowRecord, WorkflowState
from jobserver.common.states import JobState
from jobserver.common.tasks import BackgroundTasks
from jobserver.contexts.peers import PeerCall
from jobserver.jobs.manager import JobManager
from jobserver.jobs.submission import what_to_run
from jobserver.storage.write_behind import WriteBehindStore
from jobserver.workflows.specs import (
    JobSpec,
    StepSpec,
    WorkflowSpec,
    check_job,
    job_request,
    job_spec_json,
    parse_workflow,
    substitute,
)

log = structlog.get_logger(__name__)

# What of a step's job parameters a peer is not sent: the step's job is always asynchronous.
_NOT_FORWARDED = frozenset({"sync", "timeout"})

STEP_FAILED_CLASS = "WorkflowStepFailed"
RECOVER_LIMIT = 100_000
_JOB_TO_STEP = {
    JobState.FINISHED: StepState.FINISHED,
    JobState.ERROR: StepState.ERROR,
    JobState.KILLED: StepState.KILLED,
}


def workflow_json(spec: WorkflowSpec) -> dict[str, Any]:
    """The spec as stored (and as a schedule keeps it)."""
    steps = [
        {
            "name": s.name,
            "job": job_spec_json(s.job),
            "after": list(s.after),
            "continue-on-failure": s.continue_on_failure,
        }
        for s in spec.steps
    ]
    return {"name": spec.name, "steps": steps}


class Workflows:
    def __init__(
        self, settings: Settings, store: WriteBehindStore, jobs: JobManager, tasks: BackgroundTasks
    ) -> None:
        self._settings = settings
        self._store = store
        self._jobs = jobs
        self._tasks = tasks
        self._steps_of_jobs: dict[str, str] = {}  # job id -> its workflow's id (running steps)
        self._locks: dict[str, asyncio.Lock] = {}  # one advance of a workflow at a time
        self._end_listeners: list[Callable[[WorkflowRecord], None]] = []
        self._peer_call: PeerCall | None = None
        jobs.listen_for_ends(self._job_ended)

    def reach_peers_with(self, peer_call: PeerCall) -> None:
        """How steps whose context another server runs are submitted (and killed) there."""
        self._peer_call = peer_call

    def listen_for_ends(self, listener: Callable[[WorkflowRecord], None]) -> None:
        self._end_listeners.append(listener)

    # --- requests ----------------------------------------------------------------------------------

    async def start(
        self,
        spec: WorkflowSpec,
        *,
        caller: Caller | None = None,
        run_as: str | None = None,
        schedule_name: str | None = None,
    ) -> WorkflowRecord:
        await self.check(spec)
        workflow_id = str(uuid.uuid4())
        record = WorkflowRecord(
            id=workflow_id,
            name=spec.name,
            state=WorkflowState.RUNNING,
            spec=workflow_json(spec),
            owner=self._settings.server_id,
            start_time=utc_now(),
            schedule_name=schedule_name,
            user=caller.user if caller else None,
            acts_as=tuple(sorted(caller.acts_as)) if caller else (),
            run_as=run_as,
            steps=tuple(StepRecord(workflow_id, step.name, StepState.PENDING) for step in spec.steps),
        )
        await self._store.insert_workflow(record)
        log.info("workflow_started", workflow_id=workflow_id, name=spec.name, steps=len(spec.steps))
        self._spawn_advance(workflow_id)
        return record

    async def check(self, spec: WorkflowSpec) -> None:
        """Each step names a job to run, and its config parses (400 otherwise)."""
        for step in spec.steps:
            request = await check_job(step.job)
            what_to_run(request, merge(self._settings.plain, request.posted_config))

    async def get(self, workflow_id: str) -> WorkflowRecord:
        workflow = await self._store.get_workflow(workflow_id)
        if workflow is None:
            raise NotFound(f"No such workflow ID {workflow_id}")
        return workflow

    async def list(self, limit: int, state: str | None) -> list[WorkflowRecord]:
        try:
            wanted = WorkflowState(state.upper()) if state else None
        except ValueError:
            return []
        return await self._store.list_workflows(limit, state=wanted)

    async def kill(self, workflow_id: str) -> WorkflowRecord:
        """Running steps' jobs are killed (the job kill path), unstarted steps never start."""
        workflow = await self.get(workflow_id)
        if workflow.state.is_final:
            raise NotFound(f"No running workflow with ID {workflow_id}")
        async with self._lock(workflow_id):
            killed = await self._store.update_workflow(workflow_id, WorkflowState.KILLED)
            if killed is None:
                raise NotFound(f"No running workflow with ID {workflow_id}")
            for step in killed.steps:
                await self._kill_step(step)
        log.info("workflow_killed", workflow_id=workflow_id)
        ended = await self.get(workflow_id)
        self._ended(ended)
        return ended

    async def _kill_step(self, step: StepRecord) -> None:
        if step.state.is_final:
            return
        if step.job_id is not None:
            self._steps_of_jobs.pop(step.job_id, None)
            try:
                try:
                    await self._jobs.kill(step.job_id)
                except ServedByPeer as served:
                    if self._peer_call is None:
                        raise
                    await self._peer_call(served, "DELETE", f"/jobs/{quote(step.job_id)}", b"", "", None)
            except JobServerError as error:  # it had ended, or its context is a peer's
                log.info("workflow_step_not_killed", job_id=step.job_id, reason=error.message)
        await self._store.update_step(step.workflow_id, step.name, StepState.KILLED)

    # --- the engine --------------------------------------------------------------------------------

    async def recover(self) -> None:
        """At start-up: this server's running workflows go on; a step it was starting is ERROR."""
        for workflow in await self._store.list_workflows(
            RECOVER_LIMIT, state=WorkflowState.RUNNING, owner=self._settings.server_id
        ):
            await self._take_up(workflow)
            log.info("workflow_recovered", workflow_id=workflow.id)

    async def _take_up(self, workflow: WorkflowRecord) -> None:
        """A workflow an earlier server process (this one's, or a dead peer's) drove."""
        for step in workflow.steps:
            if step.state is StepState.STARTING:  # whether its job was accepted is not known
                error = error_map("the server stopped while it started this step", STEP_FAILED_CLASS)
                await self._store.update_step(workflow.id, step.name, StepState.ERROR, error=error)
        self._spawn_advance(workflow.id)

    async def keep_adopting(self) -> None:
        """Every peer heartbeat interval: the running workflows of the servers this one adopted."""
        while True:
            await asyncio.sleep(self._settings.peer_heartbeat_interval_s)
            silent_since = utc_now() - datetime.timedelta(seconds=self._settings.peer_timeout_s)
            try:
                adopted = await self._store.adopt_workflows(
                    self._settings.server_id, silent_since=silent_since
                )
                for workflow_id in adopted:
                    workflow = await self._store.get_workflow(workflow_id)
                    if workflow is not None:
                        await self._take_up(workflow)
                        log.warning("workflow_adopted", workflow_id=workflow_id)
            except StoreUnavailable as error:
                log.warning("workflow_adoption_failed", error=error.message)

    async def keep_reconciling(self) -> None:
        while True:
            await asyncio.sleep(self._settings.workflow_reconcile_interval_s)
            try:
                running = await self._store.list_workflows(
                    RECOVER_LIMIT, state=WorkflowState.RUNNING, owner=self._settings.server_id
                )
            except StoreUnavailable as error:
                log.warning("workflow_reconcile_failed", error=error.message)
                continue
            for workflow in running:
                self._spawn_advance(workflow.id)

    def _job_ended(self, job_id: str) -> None:
        workflow_id = self._steps_of_jobs.pop(job_id, None)
        if workflow_id is not None:
            self._spawn_advance(workflow_id)

    def _spawn_advance(self, workflow_id: str) -> None:
        self._tasks.spawn(self._advance(workflow_id), name=f"workflow-{workflow_id}")

    def _lock(self, workflow_id: str) -> asyncio.Lock:
        return self._locks.setdefault(workflow_id, asyncio.Lock())

    async def _advance(self, workflow_id: str) -> None:
        async with self._lock(workflow_id):
            workflow = await self._store.get_workflow(workflow_id)
            if workflow is None or workflow.state.is_final or workflow.owner != self._settings.server_id:
                # Ended, or adopted by a peer (this server was taken for dead): not this one's.
                self._forget(workflow_id)
                return
            spec = parse_workflow(workflow.spec)
            steps = {step.name: step for step in workflow.steps}
            for step in workflow.steps:
                if step.state is StepState.STARTED and step.job_id is not None:
                    steps[step.name] = await self._follow(step)
            for spec_step in spec.steps:  # posted order: a step's predecessors may come later
                await self._decide(workflow, spec, spec_step, steps)
            if all(step.state.is_final for step in steps.values()):
                await self._finish(workflow, spec, steps)

    async def _follow(self, step: StepRecord) -> StepRecord:
        """A started step takes its job's final state; a running one is listened for."""
        assert step.job_id is not None
        self._steps_of_jobs[step.job_id] = step.workflow_id
        job = await self._store.get_job(step.job_id)
        state = JobState.ERROR if job is None else job.state
        if not state.is_final:
            return step
        self._steps_of_jobs.pop(step.job_id, None)
        error = error_map(f"job {step.job_id} no longer exists") if job is None else job.error
        target = _JOB_TO_STEP[state]
        await self._store.update_step(
            step.workflow_id, step.name, target, error=error if target is not StepState.FINISHED else None
        )
        return StepRecord(step.workflow_id, step.name, target, step.job_id, error)

    async def _decide(
        self, workflow: WorkflowRecord, spec: WorkflowSpec, step: StepSpec, steps: dict[str, StepRecord]
    ) -> None:
        """A pending step fails with a failed predecessor, or starts once all have ended."""
        if steps[step.name].state is not StepState.PENDING:
            return
        before = [steps[name] for name in step.after]
        failed = [
            p
            for p in before
            if p.state in (StepState.ERROR, StepState.KILLED) and not spec.step(p.name).continue_on_failure
        ]
        if failed:
            cause = failed[0]
            error: ErrorMap = {
                "message": f"step {cause.name} (job {cause.job_id}) failed",
                "errorClass": STEP_FAILED_CLASS,
                "failedStep": cause.name,
                "failedJobId": cause.job_id or "",
            }
            if await self._store.update_step(workflow.id, step.name, StepState.ERROR, error=error):
                steps[step.name] = StepRecord(workflow.id, step.name, StepState.ERROR, None, error)
                log.info("workflow_step_failed", workflow_id=workflow.id, step=step.name, cause=cause.name)
        elif all(p.state.is_final for p in before) and await self._store.update_step(
            workflow.id, step.name, StepState.STARTING
        ):
            steps[step.name] = StepRecord(workflow.id, step.name, StepState.STARTING)
            self._tasks.spawn(
                self._start_step(workflow, step, dict(steps)), name=f"step-{workflow.id}-{step.name}"
            )

    async def _start_step(
        self,
        workflow: WorkflowRecord,
        step: StepSpec,
        steps: Mapping[str, StepRecord],
    ) -> None:
        """Submit the claimed step's job (the results it names substituted), then advance."""
        caller = Caller(workflow.user, frozenset(workflow.acts_as)) if workflow.user else None
        try:
            results = {name: await self._result(steps[name].job_id) for name in step.job.references()}
            request = await job_request(step.job, results=results, caller=caller, run_as=workflow.run_as)
            try:
                job_id = (await self._jobs.submit(request)).job.id
            except ServedByPeer as served:
                job_id = await self._submit_on_peer(served, step.job, results, caller)
        except JobServerError as error:
            failure = dict(error.details) if isinstance(error.details, Mapping) else error_map(error.message)
            await self._store.update_step(workflow.id, step.name, StepState.ERROR, error=failure)
            log.info("workflow_step_refused", workflow_id=workflow.id, step=step.name, error=error.message)
        else:
            await self._store.update_step(workflow.id, step.name, StepState.STARTED, job_id=job_id)
            log.info("workflow_step_started", workflow_id=workflow.id, step=step.name, job_id=job_id)
        await self._advance(workflow.id)

    async def _submit_on_peer(
        self, served: ServedByPeer, job: JobSpec, results: Mapping[str, bytes | None], caller: Caller | None
    ) -> str:
        """The step's job submitted to the server that runs its context: its job id."""
        if self._peer_call is None:
            raise served
        config = substitute(job.config, results)
        text, content_type = (
            (config, "text/plain") if isinstance(config, str) else (json.dumps(config), "application/json")
        )
        body = text.encode()
        parameters = {key: value for key, value in job.parameters.items() if key not in _NOT_FORWARDED}
        status, answer = await self._peer_call(
            served, "POST", "/jobs?" + urlencode(parameters), body, content_type, caller
        )
        if status == 202 and isinstance(answer, Mapping) and isinstance(answer.get("jobId"), str):
            return str(answer["jobId"])
        result = answer.get("result") if isinstance(answer, Mapping) else answer
        details = result if isinstance(result, dict) else None
        raise JobServerError(f"{served.message}, which answered {status}: {result}", details=details)

    async def _result(self, job_id: str | None) -> bytes | None:
        if job_id is None:
            return None
        result = await self._store.get_result(job_id)
        if result is None or isinstance(result, bytes):
            return result
        # A result that came in chunks: substituted into a config, it is read whole (the
        # dependant's config is bounded by max-upload-size when it is submitted).
        return b"".join([chunk async for chunk in result.chunks()])

    async def _finish(
        self, workflow: WorkflowRecord, spec: WorkflowSpec, steps: Mapping[str, StepRecord]
    ) -> None:
        failed = [
            step
            for step in steps.values()
            if step.state is not StepState.FINISHED and not spec.step(step.name).continue_on_failure
        ]
        error: ErrorMap | None = None
        if failed:
            # The cause rather than the dependants it failed.
            causes = [step for step in failed if (step.error or {}).get("errorClass") != STEP_FAILED_CLASS]
            first = (causes or failed)[0]
            error = {
                "message": f"step {first.name} failed"
                + (f": {first.error.get('message', '')}" if first.error else ""),
                "errorClass": STEP_FAILED_CLASS,
                "failedStep": first.name,
                "failedJobId": first.job_id or "",
            }
        target = WorkflowState.ERROR if failed else WorkflowState.FINISHED
        ended = await self._store.update_workflow(workflow.id, target, error=error)
        if ended is not None:
            log.info("workflow_ended", workflow_id=workflow.id, state=target.value)
            self._ended(ended)
        self._locks.pop(workflow.id, None)

    def _forget(self, workflow_id: str) -> None:
        self._locks.pop(workflow_id, None)
        for job_id in [job for job, owner in self._steps_of_jobs.items() if owner == workflow_id]:
            del self._steps_of_jobs[job_id]

    def _ended(self, workflow: WorkflowRecord) -> None:
        for listener in self._end_listeners:
            listener(workflow)
