"""Pending callbacks (checked on every backend, plain and through the write-behind layer): queued
with the job's end, claimed by one server at a time under a lease, rescheduled, removed."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime

from jobserver.common.records import PendingCallback, utc_now
from jobserver.common.states import JobState
from jobserver.storage import Store
from tests.storage.conftest import Backend
from tests.storage.factories import make_job

URL = "https://client.example.com/done"
LEASE_S = 60.0


async def ended_with_callback(
    store: Store, job_id: str, target: JobState = JobState.ERROR
) -> datetime.datetime | None:
    """Store a job with a callback_url that ended in ``target``; its end_time."""
    await store.insert_job(dataclasses.replace(make_job(job_id), callback_url=URL), {})
    if target is JobState.FINISHED:
        ended = await store.finish_job(job_id, b"42")
    else:
        ended = await store.update_job(job_id, target, error={"message": "no"})
    assert ended is not None
    return ended.end_time


async def test_a_job_ending_finished_or_error_with_a_callback_url_queues_its_callback(store: Store) -> None:
    finished = await ended_with_callback(store, "finished", JobState.FINISHED)
    failed = await ended_with_callback(store, "failed", JobState.ERROR)
    await ended_with_callback(store, "killed", JobState.KILLED)  # killed jobs are not reported
    await store.insert_job(make_job("no-url"), {})
    await store.update_job("no-url", JobState.ERROR)
    await store.update_job("failed", JobState.ERROR)  # a late duplicate report changes nothing
    await store.insert_job(dataclasses.replace(make_job("running"), callback_url=URL), {})
    await store.update_job("running", JobState.RUNNING)

    pending = await store.list_callbacks()

    assert finished is not None and failed is not None
    assert sorted(pending, key=lambda callback: callback.job_id) == [
        PendingCallback("failed", URL, attempts=0, next_attempt_time=failed, owner=None),
        PendingCallback("finished", URL, attempts=0, next_attempt_time=finished, owner=None),
    ]


async def test_a_claimed_callback_is_nobody_elses_until_its_lease_runs_out(store: Store) -> None:
    await ended_with_callback(store, "job-1")

    claimed = await store.claim_callbacks("server-a", lease_s=LEASE_S)

    assert [(callback.job_id, callback.owner) for callback in claimed] == [("job-1", "server-a")]
    assert await store.claim_callbacks("server-b", lease_s=LEASE_S) == []
    assert await store.claim_callbacks("server-a", lease_s=LEASE_S) == []  # held already
    # The holder's next process takes over what it held.
    assert [
        callback.job_id for callback in await store.claim_callbacks("server-a", lease_s=LEASE_S, own=True)
    ] == ["job-1"]
    # A lease that ran out (its holder stopped renewing it): another server takes over.
    past = utc_now() - datetime.timedelta(seconds=5)
    assert await store.reschedule_callback(
        "job-1", "server-a", attempts=2, next_attempt_time=past, lease_s=1.0
    )
    taken = await store.claim_callbacks("server-b", lease_s=LEASE_S)
    assert taken == [PendingCallback("job-1", URL, attempts=2, next_attempt_time=past, owner="server-b")]
    assert not await store.reschedule_callback(
        "job-1", "server-a", attempts=3, next_attempt_time=utc_now(), lease_s=LEASE_S
    )  # no longer server-a's


async def test_claiming_one_jobs_callback_leaves_the_others(store: Store) -> None:
    await ended_with_callback(store, "job-1")
    await ended_with_callback(store, "job-2")

    claimed = await store.claim_callbacks("server-a", lease_s=LEASE_S, job_id="job-2")

    assert [callback.job_id for callback in claimed] == ["job-2"]
    assert [callback.job_id for callback in await store.claim_callbacks("server-b", lease_s=LEASE_S)] == [
        "job-1"
    ]


async def test_a_failed_attempt_is_recorded_with_the_next_attempt_time(store: Store) -> None:
    await ended_with_callback(store, "job-1")
    await store.claim_callbacks("server-a", lease_s=LEASE_S)
    later = utc_now() + datetime.timedelta(seconds=30)

    assert await store.reschedule_callback(
        "job-1", "server-a", attempts=1, next_attempt_time=later, lease_s=LEASE_S
    )

    assert await store.list_callbacks() == [
        PendingCallback("job-1", URL, attempts=1, next_attempt_time=later, owner="server-a")
    ]
    assert await store.claim_callbacks("server-b", lease_s=LEASE_S) == []


async def test_removed_callbacks_are_gone_and_released_ones_free_at_once(store: Store) -> None:
    for job_id in ("delivered", "left", "theirs"):
        await ended_with_callback(store, job_id)
    await store.claim_callbacks("server-a", lease_s=LEASE_S, job_id="delivered")
    await store.claim_callbacks("server-a", lease_s=LEASE_S, job_id="left")
    await store.claim_callbacks("server-c", lease_s=LEASE_S, job_id="theirs")

    await store.remove_callback("delivered")
    assert await store.release_callbacks("server-a") == 1

    assert [(c.job_id, c.owner) for c in await store.list_callbacks()] == [
        ("left", None),
        ("theirs", "server-c"),
    ]
    assert [c.job_id for c in await store.claim_callbacks("server-b", lease_s=LEASE_S)] == ["left"]


async def test_retention_deleting_a_job_takes_its_pending_callback(store: Store) -> None:
    await ended_with_callback(store, "job-1")

    await store.delete_expired(utc_now() + datetime.timedelta(days=1))

    assert await store.list_callbacks() == []


async def test_servers_claiming_at_once_take_each_callback_once(store: Store, backend: Backend) -> None:
    job_ids = [f"job-{number}" for number in range(20)]
    for job_id in job_ids:
        await ended_with_callback(store, job_id)
    others = [backend.new_store() for _ in range(2)]
    for other in others:
        await other.open()
    try:
        claims = await asyncio.gather(
            *(
                server.claim_callbacks(owner, lease_s=LEASE_S, own=True)
                for server, owner in [(store, "a"), (others[0], "b"), (others[1], "c"), (store, "d")]
            )
        )
    finally:
        for other in others:
            await other.close()

    claimed = [callback.job_id for claim in claims for callback in claim]
    assert sorted(claimed) == sorted(job_ids)
