"""Job and context states, and which changes between them are allowed.

The tables are the single source of truth: storage updates are compare-and-set from
``allowed_sources(target)``, so a late message can never move a job or context out of a final
state (a KILLED job stays KILLED whatever the driver reports afterwards).
"""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    # Accepted and persisted, not yet running in the driver (sent, queued, or loading).
    STARTED = "STARTED"
    RUNNING = "RUNNING"
    RESTARTING = "RESTARTING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    KILLED = "KILLED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_JOB_STATES


class ContextState(enum.StrEnum):
    STARTED = "STARTED"  # driver launched, not yet connected back with a Spark context
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    RESTARTING = "RESTARTING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    KILLED = "KILLED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_CONTEXT_STATES


FINAL_JOB_STATES = frozenset({JobState.FINISHED, JobState.ERROR, JobState.KILLED})
FINAL_CONTEXT_STATES = frozenset({ContextState.FINISHED, ContextState.ERROR, ContextState.KILLED})
ACTIVE_JOB_STATES = frozenset(set(JobState) - FINAL_JOB_STATES)
ACTIVE_CONTEXT_STATES = frozenset(set(ContextState) - FINAL_CONTEXT_STATES)
# The final states a job's callbackUrl hears of (killed jobs are not reported).
CALLBACK_JOB_STATES = frozenset({JobState.FINISHED, JobState.ERROR})

# target state -> the states it may be entered from (sjs-contract §3.1 and §3.2)
JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.STARTED: frozenset(),
    JobState.RUNNING: frozenset({JobState.STARTED, JobState.RESTARTING}),
    JobState.RESTARTING: frozenset({JobState.STARTED, JobState.RUNNING, JobState.RESTARTING}),
    # From RESTARTING too: a resubmitted short job reports its outcome without JobStarted.
    JobState.FINISHED: frozenset({JobState.STARTED, JobState.RUNNING, JobState.RESTARTING}),
    JobState.ERROR: frozenset({JobState.STARTED, JobState.RUNNING, JobState.RESTARTING}),
    JobState.KILLED: frozenset({JobState.STARTED, JobState.RUNNING, JobState.RESTARTING}),
}

CONTEXT_TRANSITIONS: dict[ContextState, frozenset[ContextState]] = {
    ContextState.STARTED: frozenset(),
    ContextState.RUNNING: frozenset({ContextState.STARTED, ContextState.RESTARTING}),
    ContextState.STOPPING: frozenset({ContextState.STARTED, ContextState.RUNNING, ContextState.RESTARTING}),
    ContextState.RESTARTING: frozenset({ContextState.STARTED, ContextState.RUNNING}),
    ContextState.FINISHED: frozenset({ContextState.STOPPING}),
    ContextState.ERROR: frozenset(
        {
            ContextState.STARTED,
            ContextState.RUNNING,
            ContextState.STOPPING,
            ContextState.RESTARTING,
        }
    ),
    ContextState.KILLED: frozenset({ContextState.STARTED, ContextState.RUNNING, ContextState.RESTARTING}),
}


class IllegalTransition(Exception):
    def __init__(self, source: enum.Enum, target: enum.Enum) -> None:
        super().__init__(f"illegal state change {source.value} -> {target.value}")
        self.source = source
        self.target = target


def job_sources(target: JobState) -> frozenset[JobState]:
    return JOB_TRANSITIONS[target]


def context_sources(target: ContextState) -> frozenset[ContextState]:
    return CONTEXT_TRANSITIONS[target]


def check_transition(source: JobState | ContextState, target: JobState | ContextState) -> None:
    # Both enums are StrEnums, equal by value across types: check the kinds match first.
    if type(source) is not type(target):
        raise IllegalTransition(source, target)
    sources = JOB_TRANSITIONS[target] if isinstance(target, JobState) else CONTEXT_TRANSITIONS[target]
    if source not in sources:
        raise IllegalTransition(source, target)
