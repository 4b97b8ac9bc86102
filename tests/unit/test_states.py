"""Job and context states: the transition tables walked pair by pair (contract §3)."""

from __future__ import annotations

import itertools
from enum import StrEnum

import pytest

from jobserver.common.states import (
    ACTIVE_CONTEXT_STATES,
    ACTIVE_JOB_STATES,
    CONTEXT_TRANSITIONS,
    FINAL_CONTEXT_STATES,
    FINAL_JOB_STATES,
    JOB_TRANSITIONS,
    ContextState,
    IllegalTransition,
    JobState,
    check_transition,
    context_sources,
    job_sources,
)

JOB_PAIRS = list(itertools.product(JobState, JobState))
CONTEXT_PAIRS = list(itertools.product(ContextState, ContextState))


def pair_id(pair: tuple[StrEnum, StrEnum]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def test_every_job_state_has_a_row_in_the_table() -> None:
    assert set(JOB_TRANSITIONS) == set(JobState)


def test_every_context_state_has_a_row_in_the_table() -> None:
    assert set(CONTEXT_TRANSITIONS) == set(ContextState)


@pytest.mark.parametrize("pair", JOB_PAIRS, ids=pair_id)
def test_job_transition_is_allowed_exactly_when_the_table_lists_it(pair: tuple[JobState, JobState]) -> None:
    source, target = pair
    if source in JOB_TRANSITIONS[target]:
        check_transition(source, target)
    else:
        with pytest.raises(IllegalTransition) as raised:
            check_transition(source, target)
        assert (raised.value.source, raised.value.target) == (source, target)
        assert str(raised.value) == f"illegal state change {source.value} -> {target.value}"


@pytest.mark.parametrize("pair", CONTEXT_PAIRS, ids=pair_id)
def test_context_transition_is_allowed_exactly_when_the_table_lists_it(
    pair: tuple[ContextState, ContextState],
) -> None:
    source, target = pair
    if source in CONTEXT_TRANSITIONS[target]:
        check_transition(source, target)
    else:
        with pytest.raises(IllegalTransition) as raised:
            check_transition(source, target)
        assert (raised.value.source, raised.value.target) == (source, target)


def test_both_tables_allow_some_and_refuse_some_changes() -> None:
    # Guards the walk above against a table that allows everything or nothing.
    allowed_jobs = sum(source in JOB_TRANSITIONS[target] for source, target in JOB_PAIRS)
    allowed_contexts = sum(source in CONTEXT_TRANSITIONS[target] for source, target in CONTEXT_PAIRS)
    assert 0 < allowed_jobs < len(JOB_PAIRS)
    assert 0 < allowed_contexts < len(CONTEXT_PAIRS)


@pytest.mark.parametrize("source", sorted(FINAL_JOB_STATES))
def test_no_job_transition_leaves_a_final_state(source: JobState) -> None:
    for target in JobState:
        assert source not in JOB_TRANSITIONS[target]
        with pytest.raises(IllegalTransition):
            check_transition(source, target)


@pytest.mark.parametrize("source", sorted(FINAL_CONTEXT_STATES))
def test_no_context_transition_leaves_a_final_state(source: ContextState) -> None:
    for target in ContextState:
        assert source not in CONTEXT_TRANSITIONS[target]
        with pytest.raises(IllegalTransition):
            check_transition(source, target)


def test_killed_job_stays_killed_when_the_driver_reports_late() -> None:
    for late_report in (JobState.RUNNING, JobState.FINISHED, JobState.ERROR):
        with pytest.raises(IllegalTransition):
            check_transition(JobState.KILLED, late_report)


def test_started_is_never_the_target_of_a_job_transition() -> None:
    assert JOB_TRANSITIONS[JobState.STARTED] == frozenset()
    for source in JobState:
        with pytest.raises(IllegalTransition):
            check_transition(source, JobState.STARTED)


def test_started_is_never_the_target_of_a_context_transition() -> None:
    assert CONTEXT_TRANSITIONS[ContextState.STARTED] == frozenset()
    for source in ContextState:
        with pytest.raises(IllegalTransition):
            check_transition(source, ContextState.STARTED)


def test_every_non_final_job_state_can_reach_a_final_state() -> None:
    for source in ACTIVE_JOB_STATES:
        assert any(source in JOB_TRANSITIONS[target] for target in FINAL_JOB_STATES), source


def test_every_non_final_context_state_can_reach_a_final_state() -> None:
    for source in ACTIVE_CONTEXT_STATES:
        assert any(source in CONTEXT_TRANSITIONS[target] for target in FINAL_CONTEXT_STATES), source


def test_final_job_states_are_finished_error_and_killed() -> None:
    assert {state.value for state in FINAL_JOB_STATES} == {"FINISHED", "ERROR", "KILLED"}
    assert frozenset(JobState) - FINAL_JOB_STATES == ACTIVE_JOB_STATES


def test_final_context_states_are_finished_error_and_killed() -> None:
    assert {state.value for state in FINAL_CONTEXT_STATES} == {"FINISHED", "ERROR", "KILLED"}
    assert frozenset(ContextState) - FINAL_CONTEXT_STATES == ACTIVE_CONTEXT_STATES


@pytest.mark.parametrize("state", list(JobState))
def test_job_state_is_final_exactly_when_it_is_in_the_final_set(state: JobState) -> None:
    assert state.is_final is (state in FINAL_JOB_STATES)


@pytest.mark.parametrize("state", list(ContextState))
def test_context_state_is_final_exactly_when_it_is_in_the_final_set(state: ContextState) -> None:
    assert state.is_final is (state in FINAL_CONTEXT_STATES)


def test_source_lookups_return_the_table_rows() -> None:
    for job_target in JobState:
        assert job_sources(job_target) == JOB_TRANSITIONS[job_target]
    for context_target in ContextState:
        assert context_sources(context_target) == CONTEXT_TRANSITIONS[context_target]


def test_state_values_are_the_contract_labels() -> None:
    job_labels = {"STARTED", "RUNNING", "RESTARTING", "FINISHED", "ERROR", "KILLED"}
    assert {state.value for state in JobState} == job_labels
    assert {state.value for state in ContextState} == job_labels | {"STOPPING"}


def test_job_state_is_refused_as_the_source_of_a_context_transition() -> None:
    with pytest.raises((IllegalTransition, TypeError)):
        check_transition(JobState.STARTED, ContextState.RUNNING)
