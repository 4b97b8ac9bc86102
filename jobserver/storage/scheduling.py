"""The store's contract for schedules and workflows (part of ``Store``), and its pass-through for
layers that wrap a store.

Rules beside base.py's:
* A due time of a schedule is claimed by inserting its run: the primary key (schedule, due time)
  lets exactly one of several servers claim it (``claim_run`` returns False to the others).
* Schedules move their ``next_due_at`` on by compare-and-set (``advance_schedule``); runs, steps
  and workflows change state by compare-and-set from the tables in common/scheduling.py.
* Workflows and steps are stored together; a workflow is returned with its steps, in the order
  they were posted.
"""

from __future__ import annotations

import abc
import datetime
from collections.abc import Sequence

from jobserver.common.records import ErrorMap
from jobserver.common.scheduling import (
    RunState,
    ScheduleRecord,
    ScheduleRun,
    StepState,
    WorkflowRecord,
    WorkflowState,
)


class SchedulingStore(abc.ABC):
    # --- schedules ---------------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_schedule(self, schedule: ScheduleRecord) -> bool:
        """False (and nothing stored) when a schedule of that name exists."""

    @abc.abstractmethod
    async def get_schedule(self, name: str) -> ScheduleRecord | None: ...

    @abc.abstractmethod
    async def list_schedules(self) -> list[ScheduleRecord]:
        """By name."""

    @abc.abstractmethod
    async def replace_schedule(self, schedule: ScheduleRecord) -> bool:
        """Every field but ``created_at`` replaced; False when there is no such schedule."""

    @abc.abstractmethod
    async def delete_schedule(self, name: str) -> bool:
        """The schedule and its runs (their jobs and workflows stay); False when there was none."""

    @abc.abstractmethod
    async def advance_schedule(
        self, name: str, *, from_due: datetime.datetime, to_due: datetime.datetime
    ) -> bool:
        """Set ``next_due_at`` to ``to_due`` if it is still ``from_due``."""

    @abc.abstractmethod
    async def claim_run(self, run: ScheduleRun) -> bool:
        """Insert the run of a due time; False when it was claimed already (by any server) or the
        schedule is gone."""

    @abc.abstractmethod
    async def update_run(
        self,
        schedule_name: str,
        due_at: datetime.datetime,
        target: RunState,
        *,
        job_id: str | None = None,
        workflow_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Compare-and-set (``RUN_TRANSITIONS``); the ids and error are set when given."""

    @abc.abstractmethod
    async def list_runs(
        self, schedule_name: str, limit: int, *, states: Sequence[RunState] | None = None
    ) -> list[ScheduleRun]:
        """Newest due time first, each with the state of its job or workflow as ``outcome``."""

    # --- workflows ---------------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_workflow(self, workflow: WorkflowRecord) -> None:
        """The workflow and its ``steps``."""

    @abc.abstractmethod
    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None: ...

    @abc.abstractmethod
    async def list_workflows(
        self, limit: int, *, state: WorkflowState | None = None, owner: str | None = None
    ) -> list[WorkflowRecord]:
        """Newest first, with their steps."""

    @abc.abstractmethod
    async def update_workflow(
        self, workflow_id: str, target: WorkflowState, *, error: ErrorMap | None = None
    ) -> WorkflowRecord | None:
        """Compare-and-set (``WORKFLOW_TRANSITIONS``); a final state sets ``end_time``."""

    @abc.abstractmethod
    async def update_step(
        self,
        workflow_id: str,
        name: str,
        target: StepState,
        *,
        job_id: str | None = None,
        error: ErrorMap | None = None,
    ) -> bool:
        """Compare-and-set (``STEP_TRANSITIONS``); ``job_id`` and ``error`` set when given."""

    @abc.abstractmethod
    async def adopt_workflows(self, adopter_id: str, *, silent_since: datetime.datetime) -> list[str]:
        """Move the RUNNING workflows of every server that ``adopter_id`` adopted (its
        ``adopted_by``, see ``Store.adopt_contexts``) and whose heartbeat is still older than
        ``silent_since`` to ``adopter_id``; their ids. One statement: no other server can take them."""

    # --- retention ---------------------------------------------------------------------------------

    @abc.abstractmethod
    async def delete_expired_scheduling(
        self, *, runs_before: datetime.datetime, workflows_before: datetime.datetime
    ) -> dict[str, int]:
        """Delete and count ``workflows`` in a final state that ended before ``workflows_before``
        (with their steps) and ``schedule_runs`` claimed before ``runs_before`` (the wall clock's
        time, not the due time) that are over (skipped,
        failed, or their job or workflow ended or is gone). Never a running workflow, nor a run
        that waits or whose work still goes."""


class SchedulingPassThrough(SchedulingStore):
    """``SchedulingStore`` handed on to ``self._store`` unchanged (nothing of it is held)."""

    _store: SchedulingStore

    async def insert_schedule(self, schedule: ScheduleRecord) -> bool:
        return await self._store.insert_schedule(schedule)

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        return await self._store.get_schedule(name)

    async def list_schedules(self) -> list[ScheduleRecord]:
        return await self._store.list_schedules()

    async def replace_schedule(self, schedule: ScheduleRecord) -> bool:
        return await self._store.replace_schedule(schedule)

    async def delete_schedule(self, name: str) -> bool:
        return await self._store.delete_schedule(name)

    async def advance_schedule(
        self, name: str, *, from_due: datetime.datetime, to_due: datetime.datetime
    ) -> bool:
        return await self._store.advance_schedule(name, from_due=from_due, to_due=to_due)

    async def claim_run(self, run: ScheduleRun) -> bool:
        return await self._store.claim_run(run)

    async def update_run(
        self,
        schedule_name: str,
        due_at: datetime.datetime,
        target: RunState,
        *,
        job_id: str | None = None,
        workflow_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        return await self._store.update_run(
            schedule_name, due_at, target, job_id=job_id, workflow_id=workflow_id, error=error
        )

    async def list_runs(
        self, schedule_name: str, limit: int, *, states: Sequence[RunState] | None = None
    ) -> list[ScheduleRun]:
        return await self._store.list_runs(schedule_name, limit, states=states)

    async def insert_workflow(self, workflow: WorkflowRecord) -> None:
        await self._store.insert_workflow(workflow)

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        return await self._store.get_workflow(workflow_id)

    async def list_workflows(
        self, limit: int, *, state: WorkflowState | None = None, owner: str | None = None
    ) -> list[WorkflowRecord]:
        return await self._store.list_workflows(limit, state=state, owner=owner)

    async def update_workflow(
        self, workflow_id: str, target: WorkflowState, *, error: ErrorMap | None = None
    ) -> WorkflowRecord | None:
        return await self._store.update_workflow(workflow_id, target, error=error)

    async def update_step(
        self,
        workflow_id: str,
        name: str,
        target: StepState,
        *,
        job_id: str | None = None,
        error: ErrorMap | None = None,
    ) -> bool:
        return await self._store.update_step(workflow_id, name, target, job_id=job_id, error=error)

    async def adopt_workflows(self, adopter_id: str, *, silent_since: datetime.datetime) -> list[str]:
        return await self._store.adopt_workflows(adopter_id, silent_since=silent_since)

    async def delete_expired_scheduling(
        self, *, runs_before: datetime.datetime, workflows_before: datetime.datetime
    ) -> dict[str, int]:
        return await self._store.delete_expired_scheduling(
            runs_before=runs_before, workflows_before=workflows_before
        )
