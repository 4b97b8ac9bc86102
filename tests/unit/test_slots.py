"""A context's slots and queue: jobs run up to the limit, then wait first come first served up to
the queue's limit, then are refused; restarts and rejoins give slots back and take them again."""

from __future__ import annotations

import pytest

from driver.protocol import StartJob
from jobserver.common.errors import NoSlotsAvailable
from jobserver.jobs.slots import Admission, Slots


def start(job_id: str) -> StartJob:
    return StartJob(job_id=job_id, main_class="jobs.Echo", packages=[], config_json=b"{}")


def test_jobs_run_up_to_the_limit_then_queue_then_are_refused() -> None:
    slots = Slots(max_running=2, max_queued=1)
    admitted = [slots.admit("ctx", start(job_id), context_name="sales") for job_id in ("a", "b", "c")]
    assert admitted == [Admission.RUN, Admission.RUN, Admission.QUEUED]
    with pytest.raises(NoSlotsAvailable, match=r"Too many running jobs \(2\) for job context 'sales'"):
        slots.admit("ctx", start("d"), context_name="sales")
    assert slots.admit("other", start("e"), context_name="other") is Admission.RUN  # per context


def test_a_freed_slot_goes_to_the_oldest_queued_job() -> None:
    slots = Slots(max_running=1, max_queued=5)
    for job_id in ("a", "b", "c"):
        slots.admit("ctx", start(job_id), context_name="sales")
    assert slots.next_to_start("ctx") is None  # no free slot yet
    assert slots.release("ctx", "a") is Admission.RUN
    assert slots.next_to_start("ctx").job_id == "b"  # type: ignore[union-attr]
    assert slots.next_to_start("ctx") is None
    assert slots.release("ctx", "c") is Admission.QUEUED  # a queued job killed: never starts
    assert slots.release("ctx", "b") is Admission.RUN
    assert slots.next_to_start("ctx") is None and slots.idle("ctx")
    assert slots.release("ctx", "b") is None


def test_a_restart_vacates_the_slots_and_resubmitted_jobs_take_them_again() -> None:
    slots = Slots(max_running=1, max_queued=0)
    slots.admit("ctx", start("a"), context_name="sales")
    assert slots.vacate("ctx") == {"a"}
    assert slots.readmit("ctx", start("a")) is Admission.RUN
    assert slots.readmit("ctx", start("a")) is None  # sent already
    # Jobs the driver no longer runs wait whatever the queue's limit: they were accepted before.
    assert slots.readmit("ctx", start("b")) is Admission.QUEUED
    assert slots.readmit("ctx", start("b")) is None


def test_a_rejoined_driver_holds_the_slots_of_what_it_runs() -> None:
    slots = Slots(max_running=2, max_queued=0)
    slots.occupy("ctx", {"a", "b"})
    with pytest.raises(NoSlotsAvailable):
        slots.admit("ctx", start("c"), context_name="sales")
    assert slots.release("ctx", "b") is Admission.RUN


def test_a_closed_context_holds_and_queues_nothing() -> None:
    slots = Slots(max_running=1, max_queued=1)
    slots.admit("ctx", start("a"), context_name="sales")
    slots.admit("ctx", start("b"), context_name="sales")
    slots.close("ctx")
    assert slots.idle("ctx") and slots.release("ctx", "a") is None
    assert slots.next_to_start("ctx") is None
