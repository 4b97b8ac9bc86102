"""A context's life on this server, as phases with one transition table, and how it ends.

The phase is the server's run-time view (the stored ``ContextState`` is what clients see):

* LAUNCHING: its driver is launched and has not reported its Spark context up yet;
* RUNNING: it takes jobs;
* STOPPING: a stop was asked for (by a client, or by the server itself); its driver is on its way out;
* AWAITING_REJOIN: launched by an earlier server process, whose driver has not rejoined this one;
* RESTARTING: supervised, its driver died and another is launched (after a backoff);
* ENDED: its driver is gone and its final state stored.

When the driver is gone, the context's final state is a pure function of the phase it was in and
of the driver's exit (``final_state``), and so is what its unfinished jobs become (``job_error``).
"""

from __future__ import annotations

import enum

from jobserver.common.errors import ErrorMap, error_map
from jobserver.common.states import ContextState

REJOIN_FAILED_MESSAGE = "Reconnect failed after Jobserver restart"
TERMINATED_ERROR_CLASS = "spark.jobserver.ContextTerminatedException"


class Phase(enum.Enum):
    LAUNCHING = "launching"
    RUNNING = "running"
    STOPPING = "stopping"
    AWAITING_REJOIN = "awaiting rejoin"
    RESTARTING = "restarting"
    ENDED = "ended"


# target phase -> the phases it may be entered from. A context starts LAUNCHING (launched by this
# server) or AWAITING_REJOIN (recovered at start-up).
PHASE_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    # A driver launched before a restart of the server, still starting Spark, says Hello.
    Phase.LAUNCHING: frozenset({Phase.AWAITING_REJOIN}),
    Phase.RUNNING: frozenset({Phase.LAUNCHING, Phase.RESTARTING, Phase.AWAITING_REJOIN}),
    Phase.STOPPING: frozenset({Phase.LAUNCHING, Phase.RUNNING, Phase.RESTARTING, Phase.AWAITING_REJOIN}),
    Phase.RESTARTING: frozenset({Phase.RUNNING, Phase.AWAITING_REJOIN}),
    Phase.AWAITING_REJOIN: frozenset(),
    Phase.ENDED: frozenset(
        {Phase.LAUNCHING, Phase.RUNNING, Phase.STOPPING, Phase.RESTARTING, Phase.AWAITING_REJOIN}
    ),
}

# The phase a recovered context takes when its driver rejoins, by the state stored before.
REJOINED_PHASES: dict[ContextState, Phase] = {
    ContextState.STARTED: Phase.LAUNCHING,
    ContextState.RUNNING: Phase.RUNNING,
    ContextState.RESTARTING: Phase.RESTARTING,
    ContextState.STOPPING: Phase.STOPPING,
}


class IllegalPhaseChange(Exception):
    def __init__(self, source: Phase, target: Phase) -> None:
        super().__init__(f"illegal phase change {source.value} -> {target.value}")


def check_phase_change(source: Phase, target: Phase) -> None:
    if source not in PHASE_TRANSITIONS[target]:
        raise IllegalPhaseChange(source, target)


def final_state(phase: Phase, returncode: int | None, reason: str | None) -> tuple[ContextState, str | None]:
    """The state a context ends in, and its error: from the phase it was in when its driver went,
    the driver's return code (None: unknown, or never launched), and why the server ended the
    driver (None: it ended by itself)."""
    exited = exit_message(returncode)
    if phase is Phase.STOPPING:
        return ContextState.FINISHED, None
    if phase is Phase.RUNNING:
        return ContextState.KILLED, reason or exited
    if phase is Phase.RESTARTING:
        return ContextState.ERROR, reason or exited
    if phase is Phase.LAUNCHING:
        return ContextState.ERROR, reason or f"Driver exited with code {returncode} before its context was up"
    if phase is Phase.AWAITING_REJOIN:
        return ContextState.ERROR, REJOIN_FAILED_MESSAGE
    raise IllegalPhaseChange(phase, Phase.ENDED)


def exit_message(returncode: int | None) -> str:
    if returncode is None:
        return "Driver exited unexpectedly"
    return f"Driver exited unexpectedly with code {returncode}"


def job_error(phase: Phase, *, context_id: str, context_name: str, message: str | None) -> ErrorMap:
    """What the unfinished jobs of a context become ERROR with, when it ends in (or from) ``phase``."""
    if phase is Phase.STOPPING:
        return error_map(f"Context ({context_name}) for this job was terminated")
    if phase is Phase.AWAITING_REJOIN:
        return error_map(REJOIN_FAILED_MESSAGE)
    return error_map(f"Unexpected termination of context {context_id}: {message}", TERMINATED_ERROR_CLASS)
