"""The records and states of schedules and workflows, shared by the store and the domain.

A schedule starts runs (one per due time, claimed once in the store whichever server claims it);
a workflow is steps, each a job, started when the steps it waits for have ended.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobserver.common.records import ErrorMap


class CatchUp(enum.StrEnum):
    """What a schedule does with due times that passed while no server ran it."""

    SKIP = "skip"  # none of them runs
    LAST = "last"  # the last of them runs, once


class Overlap(enum.StrEnum):
    """What a due time does while the schedule's previous run is still going."""

    SKIP = "skip"  # it is recorded SKIPPED
    QUEUE = "queue"  # it waits, and starts when the previous run has ended


class RunState(enum.StrEnum):
    CLAIMED = "CLAIMED"  # this due time is one server's to start (the store's unique key)
    QUEUED = "QUEUED"  # waits for the previous run (overlap = queue)
    STARTED = "STARTED"  # its job or workflow was submitted: that one's state is the run's
    SKIPPED = "SKIPPED"  # overlap = skip, and the previous run was still going
    FAILED = "FAILED"  # the submission itself failed (the error says why)


class WorkflowState(enum.StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    KILLED = "KILLED"

    @property
    def is_final(self) -> bool:
        return self is not WorkflowState.RUNNING


class StepState(enum.StrEnum):
    PENDING = "PENDING"  # waits for the steps it comes after
    STARTING = "STARTING"  # claimed by the server submitting its job
    STARTED = "STARTED"  # its job was accepted: the job's state is the step's
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    KILLED = "KILLED"

    @property
    def is_final(self) -> bool:
        return self in (StepState.FINISHED, StepState.ERROR, StepState.KILLED)


# target -> the states it may be entered from (compare-and-set in the store)
RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.CLAIMED: frozenset({RunState.QUEUED}),
    RunState.QUEUED: frozenset({RunState.CLAIMED}),
    RunState.STARTED: frozenset({RunState.CLAIMED}),
    RunState.SKIPPED: frozenset({RunState.CLAIMED}),
    RunState.FAILED: frozenset({RunState.CLAIMED}),
}
STEP_TRANSITIONS: dict[StepState, frozenset[StepState]] = {
    StepState.PENDING: frozenset(),
    StepState.STARTING: frozenset({StepState.PENDING}),
    StepState.STARTED: frozenset({StepState.STARTING}),
    StepState.FINISHED: frozenset({StepState.STARTED}),
    StepState.ERROR: frozenset({StepState.PENDING, StepState.STARTING, StepState.STARTED}),
    StepState.KILLED: frozenset({StepState.PENDING, StepState.STARTING, StepState.STARTED}),
}
WORKFLOW_TRANSITIONS: dict[WorkflowState, frozenset[WorkflowState]] = {
    WorkflowState.RUNNING: frozenset(),
    WorkflowState.FINISHED: frozenset({WorkflowState.RUNNING}),
    WorkflowState.ERROR: frozenset({WorkflowState.RUNNING}),
    WorkflowState.KILLED: frozenset({WorkflowState.RUNNING}),
}


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    name: str
    cron: str
    time_zone: str
    # What each run submits: {"job": {...}} or {"workflow": {...}} as posted (specs.py reads it).
    target: Mapping[str, Any]
    catch_up: CatchUp
    overlap: Overlap
    paused: bool
    next_due_at: datetime.datetime  # the earliest due time no server has dealt with yet
    created_at: datetime.datetime
    user: str | None = None  # who created it (its runs are submitted as that user)
    acts_as: tuple[str, ...] = ()  # whom that user may run work as
    run_as: str | None = None  # the proxy user of its ad-hoc contexts, decided at creation


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    schedule_name: str
    due_at: datetime.datetime
    state: RunState
    claimed_by: str  # the server that claimed the due time
    job_id: str | None = None
    workflow_id: str | None = None
    error: str | None = None
    # The state of its job or workflow, when the store still has it (read with the run).
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    workflow_id: str
    name: str
    state: StepState
    job_id: str | None = None
    error: ErrorMap | None = None


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    id: str
    name: str
    state: WorkflowState
    spec: Mapping[str, Any]  # the steps as posted (specs.py reads them)
    owner: str  # the server that drives it
    start_time: datetime.datetime
    end_time: datetime.datetime | None = None
    error: ErrorMap | None = None
    schedule_name: str | None = None
    user: str | None = None
    acts_as: tuple[str, ...] = ()
    run_as: str | None = None
    steps: Sequence[StepRecord] = ()
