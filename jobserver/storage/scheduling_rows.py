"""Schedules and workflows as rows, shared by the SQL backends: the columns, the statements (in
SQLite's ``?`` style; PostgreSQL's backend turns the marks into ``%s``) and the decoders.

The statements are plain SQL both dialects read alike; JSON columns are TEXT in both.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

from jobserver.common.records import ErrorMap, from_epoch_ms, to_epoch_ms
from jobserver.common.scheduling import (
    RUN_TRANSITIONS,
    STEP_TRANSITIONS,
    WORKFLOW_TRANSITIONS,
    CatchUp,
    Overlap,
    RunState,
    ScheduleRecord,
    ScheduleRun,
    StepRecord,
    StepState,
    WorkflowRecord,
    WorkflowState,
)
from jobserver.storage.rows import column_list, to_json

SCHEDULE_COLUMNS = (
    "name",
    "cron",
    "time_zone",
    "target",
    "catch_up",
    "overlap",
    "paused",
    "next_due_at",
    "created_at",
    "user_name",
    "acts_as",
    "run_as",
)
RUN_COLUMNS = ("schedule_name", "due_at", "state", "claimed_by", "job_id", "workflow_id", "error")
WORKFLOW_COLUMNS = (
    "id",
    "name",
    "state",
    "spec",
    "owner",
    "start_time",
    "end_time",
    "error",
    "schedule_name",
    "user_name",
    "acts_as",
    "run_as",
)
STEP_COLUMNS = ("workflow_id", "name", "state", "job_id", "error")

_SCHEDULES = column_list(SCHEDULE_COLUMNS)
_WORKFLOWS = column_list(WORKFLOW_COLUMNS)


def marks(count: int) -> str:
    return ", ".join(["?"] * count)


INSERT_SCHEDULE = (
    f"INSERT INTO schedules ({_SCHEDULES}) VALUES ({marks(len(SCHEDULE_COLUMNS))})"
    " ON CONFLICT (name) DO NOTHING"
)
GET_SCHEDULE = f"SELECT {_SCHEDULES} FROM schedules WHERE name = ?"
LIST_SCHEDULES = f"SELECT {_SCHEDULES} FROM schedules ORDER BY name"
REPLACE_SCHEDULE = (
    "UPDATE schedules SET cron = ?, time_zone = ?, target = ?, catch_up = ?, overlap = ?, paused = ?,"
    " next_due_at = ?, user_name = ?, acts_as = ?, run_as = ? WHERE name = ?"
)
DELETE_RUNS = "DELETE FROM schedule_runs WHERE schedule_name = ?"
DELETE_SCHEDULE = "DELETE FROM schedules WHERE name = ?"
ADVANCE_SCHEDULE = "UPDATE schedules SET next_due_at = ? WHERE name = ? AND next_due_at = ?"
# The run is claimed only while its schedule exists (a schedule deleted meanwhile claims nothing).
CLAIM_RUN = (
    f"INSERT INTO schedule_runs ({column_list(RUN_COLUMNS)}, claimed_at)"
    f" SELECT {marks(len(RUN_COLUMNS) + 1)} WHERE EXISTS (SELECT 1 FROM schedules WHERE name = ?)"
    " ON CONFLICT (schedule_name, due_at) DO NOTHING"
)
# The state of a run's job or workflow comes with it, while the store still has that.
LIST_RUNS = (
    f"SELECT {column_list(RUN_COLUMNS, 'runs')}, COALESCE(jobs.state, workflows.state)"
    " FROM schedule_runs AS runs LEFT JOIN jobs ON jobs.id = runs.job_id"
    " LEFT JOIN workflows ON workflows.id = runs.workflow_id WHERE runs.schedule_name = ?"
)
INSERT_WORKFLOW = f"INSERT INTO workflows ({_WORKFLOWS}) VALUES ({marks(len(WORKFLOW_COLUMNS))})"
INSERT_STEP = (
    "INSERT INTO workflow_steps (workflow_id, position, name, state, job_id, error) VALUES (?, ?, ?, ?, ?, ?)"
)
GET_WORKFLOW = f"SELECT {_WORKFLOWS} FROM workflows WHERE id = ?"
# The running workflows of servers this one adopted (``adopted_by``, set by the compare-and-set
# of Store.adopt_contexts, names one adopter) move to it; none once their server beats again.
ADOPT_WORKFLOWS = (
    "UPDATE workflows SET owner = ? WHERE state = 'RUNNING' AND owner IN"
    " (SELECT server_id FROM servers WHERE adopted_by = ? AND heartbeat_time < ?) RETURNING id"
)
# Retention: ended workflows (their steps go with them, ON DELETE CASCADE), and runs that are
# over: skipped, failed, or started with a job or workflow that ended (or was deleted). Runs
# that wait (CLAIMED, QUEUED) or whose work still goes are kept, whatever their age.
DELETE_EXPIRED_WORKFLOWS = "DELETE FROM workflows WHERE state <> 'RUNNING' AND end_time < ?"
DELETE_EXPIRED_RUNS = (
    "DELETE FROM schedule_runs WHERE claimed_at < ? AND (state IN ('SKIPPED', 'FAILED') OR (state = 'STARTED'"
    " AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = schedule_runs.job_id"
    " AND jobs.state NOT IN ('FINISHED', 'ERROR', 'KILLED'))"
    " AND NOT EXISTS (SELECT 1 FROM workflows WHERE workflows.id = schedule_runs.workflow_id"
    " AND workflows.state = 'RUNNING')))"
)
STEPS_OF = f"SELECT {column_list(STEP_COLUMNS)} FROM workflow_steps WHERE workflow_id = ? ORDER BY position"


def list_runs_sql(states: Sequence[RunState] | None) -> tuple[str, tuple[str, ...]]:
    if states is None:
        return LIST_RUNS + " ORDER BY runs.due_at DESC LIMIT ?", ()
    values = tuple(RunState(state).value for state in states)
    return LIST_RUNS + f" AND runs.state IN ({marks(len(values))}) ORDER BY runs.due_at DESC LIMIT ?", values


def list_workflows_sql(state: WorkflowState | None, owner: str | None) -> tuple[str, tuple[Any, ...]]:
    conditions, params = ["1 = 1"], []
    if state is not None:
        conditions.append("state = ?")
        params.append(WorkflowState(state).value)
    if owner is not None:
        conditions.append("owner = ?")
        params.append(owner)
    where = " AND ".join(conditions)
    return f"SELECT {_WORKFLOWS} FROM workflows WHERE {where} ORDER BY start_time DESC, id DESC LIMIT ?", (
        *params,
    )


def update_run_sql(
    target: RunState, job_id: str | None, workflow_id: str | None, error: str | None
) -> tuple[str, tuple[Any, ...]]:
    """The statement and its leading values; the caller appends name and due time."""
    sources = sorted(state.value for state in RUN_TRANSITIONS[target])
    sql = (
        "UPDATE schedule_runs SET state = ?, job_id = COALESCE(?, job_id),"
        " workflow_id = COALESCE(?, workflow_id), error = COALESCE(?, error)"
        f" WHERE state IN ({marks(len(sources))}) AND schedule_name = ? AND due_at = ?"
    )
    return sql, (target.value, job_id, workflow_id, error, *sources)


def update_step_sql(
    target: StepState, job_id: str | None, error: ErrorMap | None
) -> tuple[str, tuple[Any, ...]]:
    """The statement and its leading values; the caller appends workflow id and step name."""
    sources = sorted(state.value for state in STEP_TRANSITIONS[target])
    sql = (
        "UPDATE workflow_steps SET state = ?, job_id = COALESCE(?, job_id), error = COALESCE(?, error)"
        f" WHERE state IN ({marks(len(sources))}) AND workflow_id = ? AND name = ?"
    )
    return sql, (target.value, job_id, None if error is None else to_json(error), *sources)


def update_workflow_sql(target: WorkflowState, error: ErrorMap | None) -> tuple[str, tuple[Any, ...]]:
    """The statement and its leading values; the caller appends the workflow id."""
    sources = sorted(state.value for state in WORKFLOW_TRANSITIONS[target])
    end_ms = to_epoch_ms(datetime.datetime.now(datetime.UTC)) if target.is_final else None
    sql = (
        "UPDATE workflows SET state = ?, end_time = COALESCE(?, end_time), error = COALESCE(?, error)"
        f" WHERE state IN ({marks(len(sources))}) AND id = ? RETURNING {_WORKFLOWS}"
    )
    return sql, (target.value, end_ms, None if error is None else to_json(error), *sources)


# --- values and records ------------------------------------------------------------------------------


def schedule_values(schedule: ScheduleRecord) -> tuple[Any, ...]:
    return (
        schedule.name,
        schedule.cron,
        schedule.time_zone,
        to_json(schedule.target),
        schedule.catch_up.value,
        schedule.overlap.value,
        int(schedule.paused),
        to_epoch_ms(schedule.next_due_at),
        to_epoch_ms(schedule.created_at),
        schedule.user,
        to_json(list(schedule.acts_as)),
        schedule.run_as,
    )


def replace_values(schedule: ScheduleRecord) -> tuple[Any, ...]:
    """REPLACE_SCHEDULE's values: all but the name and ``created_at``, then the name."""
    values = schedule_values(schedule)
    return (*values[1:8], *values[9:], values[0])


def schedule_from_row(row: Sequence[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row[0],
        cron=row[1],
        time_zone=row[2],
        target=json.loads(row[3]),
        catch_up=CatchUp(row[4]),
        overlap=Overlap(row[5]),
        paused=bool(row[6]),
        next_due_at=from_epoch_ms(row[7]),
        created_at=from_epoch_ms(row[8]),
        user=row[9],
        acts_as=tuple(json.loads(row[10])),
        run_as=row[11],
    )


def run_values(run: ScheduleRun, claimed_at: datetime.datetime) -> tuple[Any, ...]:
    """CLAIM_RUN's values."""
    return (
        run.schedule_name,
        to_epoch_ms(run.due_at),
        run.state.value,
        run.claimed_by,
        run.job_id,
        run.workflow_id,
        run.error,
        to_epoch_ms(claimed_at),
        run.schedule_name,
    )


def run_from_row(row: Sequence[Any]) -> ScheduleRun:
    return ScheduleRun(
        schedule_name=row[0],
        due_at=from_epoch_ms(row[1]),
        state=RunState(row[2]),
        claimed_by=row[3],
        job_id=row[4],
        workflow_id=row[5],
        error=row[6],
        outcome=row[7],
    )


def workflow_values(workflow: WorkflowRecord) -> tuple[Any, ...]:
    return (
        workflow.id,
        workflow.name,
        workflow.state.value,
        to_json(workflow.spec),
        workflow.owner,
        to_epoch_ms(workflow.start_time),
        None if workflow.end_time is None else to_epoch_ms(workflow.end_time),
        None if workflow.error is None else to_json(workflow.error),
        workflow.schedule_name,
        workflow.user,
        to_json(list(workflow.acts_as)),
        workflow.run_as,
    )


def step_values(workflow_id: str, position: int, step: StepRecord) -> tuple[Any, ...]:
    error = None if step.error is None else to_json(step.error)
    return (workflow_id, position, step.name, step.state.value, step.job_id, error)


def workflow_from_row(row: Sequence[Any], steps: Sequence[Sequence[Any]]) -> WorkflowRecord:
    return WorkflowRecord(
        id=row[0],
        name=row[1],
        state=WorkflowState(row[2]),
        spec=json.loads(row[3]),
        owner=row[4],
        start_time=from_epoch_ms(row[5]),
        end_time=None if row[6] is None else from_epoch_ms(row[6]),
        error=None if row[7] is None else json.loads(row[7]),
        schedule_name=row[8],
        user=row[9],
        acts_as=tuple(json.loads(row[10])),
        run_as=row[11],
        steps=tuple(step_from_row(step) for step in steps),
    )


def step_from_row(row: Sequence[Any]) -> StepRecord:
    return StepRecord(
        workflow_id=row[0],
        name=row[1],
        state=StepState(row[2]),
        job_id=row[3],
        error=None if row[4] is None else json.loads(row[4]),
    )
