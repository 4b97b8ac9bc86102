"""A context's phases: the life cycles the server goes through are allowed, nothing else is, and
the final state and the jobs' error follow from the phase a context ends in."""

from __future__ import annotations

import itertools

import pytest

from jobserver.common.states import ContextState
from jobserver.contexts.phases import (
    PHASE_TRANSITIONS,
    REJOINED_PHASES,
    TERMINATED_ERROR_CLASS,
    IllegalPhaseChange,
    Phase,
    check_phase_change,
    final_state,
    job_error,
)

# Every way a context goes on this server, as a walk through its phases.
LIFE_CYCLES = {
    "stopped by its client": [Phase.LAUNCHING, Phase.RUNNING, Phase.STOPPING, Phase.ENDED],
    "its driver died while running": [Phase.LAUNCHING, Phase.RUNNING, Phase.ENDED],
    "its driver never came up": [Phase.LAUNCHING, Phase.ENDED],
    "stopped while starting": [Phase.LAUNCHING, Phase.STOPPING, Phase.ENDED],
    "supervised, relaunched": [Phase.LAUNCHING, Phase.RUNNING, Phase.RESTARTING, Phase.RUNNING],
    "supervised, gave up": [Phase.LAUNCHING, Phase.RUNNING, Phase.RESTARTING, Phase.ENDED],
    "stopped between two launches": [Phase.RUNNING, Phase.RESTARTING, Phase.STOPPING, Phase.ENDED],
    "rejoined while running": [Phase.AWAITING_REJOIN, Phase.RUNNING, Phase.STOPPING, Phase.ENDED],
    "rejoined while starting": [Phase.AWAITING_REJOIN, Phase.LAUNCHING, Phase.RUNNING],
    "rejoined while relaunching": [Phase.AWAITING_REJOIN, Phase.RESTARTING, Phase.RUNNING],
    "never rejoined": [Phase.AWAITING_REJOIN, Phase.ENDED],
    "stopped before it rejoined": [Phase.AWAITING_REJOIN, Phase.STOPPING, Phase.ENDED],
}


@pytest.mark.parametrize("walk", LIFE_CYCLES.values(), ids=LIFE_CYCLES.keys())
def test_each_life_cycle_of_a_context_is_allowed(walk: list[Phase]) -> None:
    for source, target in itertools.pairwise(walk):
        check_phase_change(source, target)


def test_the_table_allows_nothing_the_life_cycles_do_not_use() -> None:
    used = {pair for walk in LIFE_CYCLES.values() for pair in itertools.pairwise(walk)}
    allowed = {(source, target) for target, sources in PHASE_TRANSITIONS.items() for source in sources}
    assert allowed == used


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (Phase.ENDED, Phase.RUNNING),  # an ended context never comes back
        (Phase.ENDED, Phase.STOPPING),
        (Phase.STOPPING, Phase.RUNNING),  # a late ContextReady does not undo a stop
        (Phase.STOPPING, Phase.RESTARTING),  # nor does supervise relaunch a stopped context
        (Phase.LAUNCHING, Phase.RESTARTING),  # only a context that was up is relaunched
        (Phase.RUNNING, Phase.AWAITING_REJOIN),
    ],
)
def test_changes_no_life_cycle_makes_are_refused(source: Phase, target: Phase) -> None:
    with pytest.raises(IllegalPhaseChange, match=f"{source.value} -> {target.value}"):
        check_phase_change(source, target)


def test_a_driver_that_rejoins_takes_up_the_phase_of_the_state_stored_before() -> None:
    assert REJOINED_PHASES == {
        ContextState.STARTED: Phase.LAUNCHING,
        ContextState.RUNNING: Phase.RUNNING,
        ContextState.RESTARTING: Phase.RESTARTING,
        ContextState.STOPPING: Phase.STOPPING,
    }
    for phase in REJOINED_PHASES.values():
        check_phase_change(Phase.AWAITING_REJOIN, phase)


@pytest.mark.parametrize(
    ("phase", "returncode", "reason", "expected"),
    [
        (Phase.STOPPING, 0, None, (ContextState.FINISHED, None)),
        (Phase.STOPPING, -9, "lost", (ContextState.FINISHED, None)),
        (Phase.RUNNING, 137, None, (ContextState.KILLED, "Driver exited unexpectedly with code 137")),
        (Phase.RUNNING, None, "Driver of context a lost", (ContextState.KILLED, "Driver of context a lost")),
        (Phase.RESTARTING, 1, "x; supervise gave up", (ContextState.ERROR, "x; supervise gave up")),
        (
            Phase.LAUNCHING,
            2,
            None,
            (ContextState.ERROR, "Driver exited with code 2 before its context was up"),
        ),
        (Phase.LAUNCHING, 0, "Context failed to connect", (ContextState.ERROR, "Context failed to connect")),
        (Phase.AWAITING_REJOIN, None, None, (ContextState.ERROR, "Reconnect failed after Jobserver restart")),
    ],
)
def test_the_final_state_follows_from_the_phase_and_the_exit(
    phase: Phase, returncode: int | None, reason: str | None, expected: tuple[ContextState, str | None]
) -> None:
    assert final_state(phase, returncode, reason) == expected


def test_an_ended_context_has_no_final_state_to_give_again() -> None:
    with pytest.raises(IllegalPhaseChange):
        final_state(Phase.ENDED, 0, None)


def test_what_the_unfinished_jobs_of_an_ending_context_become() -> None:
    def error(phase: Phase) -> dict[str, str]:
        return dict(job_error(phase, context_id="c-1", context_name="sales", message="gone"))

    assert error(Phase.STOPPING)["message"] == "Context (sales) for this job was terminated"
    assert error(Phase.AWAITING_REJOIN)["message"] == "Reconnect failed after Jobserver restart"
    for phase in (Phase.RUNNING, Phase.RESTARTING, Phase.LAUNCHING):
        assert error(phase)["message"] == "Unexpected termination of context c-1: gone"
        assert error(phase)["errorClass"] == TERMINATED_ERROR_CLASS
