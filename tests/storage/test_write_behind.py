"""The write-behind layer over each backend: held writes are never contradicted, reads see them at
once, and with write-behind off nothing is held."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import AsyncIterator, Mapping

import pytest

from jobserver.common.errors import StoreUnavailable
from jobserver.common.records import JobRecord
from jobserver.common.states import JobState
from jobserver.storage import Store
from jobserver.storage.write_behind import WriteBehindStore
from tests.storage.conftest import Backend
from tests.storage.factories import make_job


@pytest.fixture
async def raw(backend: Backend) -> AsyncIterator[Store]:
    """The backend's own store, to see what is really stored."""
    opened = backend.new_store()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def held(backend: Backend) -> AsyncIterator[WriteBehindStore]:
    store = WriteBehindStore(backend.new_store(), enabled=True)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_a_held_insert_is_read_at_once_and_stored_when_written(
    held: WriteBehindStore, raw: Store
) -> None:
    job = make_job("job-1")
    insert = await held.hold_insert(job, {"input": "a"})
    assert await held.get_job("job-1") == job
    assert await held.get_job_config("job-1") == {"input": "a"}
    assert await raw.get_job("job-1") is None  # held
    await insert.write(within_s=0.01)
    assert await raw.get_job("job-1") == job
    assert await raw.get_job_config("job-1") == {"input": "a"}


async def test_any_write_about_a_job_stores_its_held_insert_first(held: WriteBehindStore, raw: Store) -> None:
    insert = await held.hold_insert(make_job("job-1"), {})
    running = await held.update_job("job-1", JobState.RUNNING)  # its driver reported before the delay
    assert running is not None and running.state is JobState.RUNNING
    assert (await raw.get_job("job-1")).state is JobState.RUNNING  # type: ignore[union-attr]
    await insert.write(within_s=60)  # written already: returns at once
    assert (await raw.get_job("job-1")).state is JobState.RUNNING  # type: ignore[union-attr]


async def test_listing_and_a_contexts_jobs_store_what_is_held(held: WriteBehindStore, raw: Store) -> None:
    await held.hold_insert(make_job("a", start_ms=1, context_id="ctx-1"), {})
    await held.hold_insert(make_job("b", start_ms=2, context_id="ctx-2"), {})
    assert [job.id for job in await held.jobs_in_context("ctx-1")] == ["a"]
    assert await raw.get_job("b") is None  # another context's: still held
    assert [job.id for job in await held.list_jobs(10)] == ["b", "a"]
    assert await raw.get_job("b") is not None


async def test_a_held_finish_is_answered_and_a_later_kill_finds_it_finished(
    held: WriteBehindStore, raw: Store
) -> None:
    job = make_job("job-1")
    await (await held.hold_insert(job, {})).write()
    finish = await held.hold_finish(job, b'{"answer":42}')
    assert finish is not None and finish.record.state is JobState.FINISHED
    assert await held.get_job("job-1") == finish.record
    assert await held.get_result("job-1") == b'{"answer":42}'
    assert (await raw.get_job("job-1")).state is JobState.STARTED  # type: ignore[union-attr]
    assert await held.update_job("job-1", JobState.KILLED) is None  # the finish came first
    stored = await raw.get_job("job-1")
    assert stored is not None and (stored.state, stored.end_time) == (
        JobState.FINISHED,
        finish.record.end_time,
    )
    assert await raw.get_result("job-1") == b'{"answer":42}'
    assert await finish.write(within_s=60) == stored  # written already: its outcome


async def test_a_finish_is_not_held_while_another_end_of_the_job_is_being_written(
    backend: Backend, raw: Store
) -> None:
    gate = asyncio.Event()
    slow = _SlowKills(backend.new_store(), gate)
    store = WriteBehindStore(slow, enabled=True)
    await store.open()
    try:
        job = make_job("job-1")
        await (await store.hold_insert(job, {})).write()
        kill = asyncio.create_task(store.update_job("job-1", JobState.KILLED))
        await asyncio.wait_for(slow.at_gate.wait(), 10)  # the kill is under way, waiting at the gate
        assert await store.hold_finish(job, b"1") is None  # to be stored before it is answered
        gate.set()
        assert (await kill).state is JobState.KILLED  # type: ignore[union-attr]
        assert await store.finish_job("job-1", b"1") is None
    finally:
        await store.close()


async def test_a_finish_the_store_cannot_take_stays_held_until_it_can(backend: Backend, raw: Store) -> None:
    failing = _FailingFinishes(backend.new_store())
    store = WriteBehindStore(failing, enabled=True)
    await store.open()
    try:
        job = make_job("job-1")
        await (await store.hold_insert(job, {})).write()
        finish = await store.hold_finish(job, b"[1]")
        assert finish is not None
        failing.down = True
        with pytest.raises(StoreUnavailable):
            await finish.write()
        assert (await store.get_job("job-1")).state is JobState.FINISHED  # type: ignore[union-attr]
        assert [job.state for job in await store.list_jobs(10, JobState.FINISHED)] == [JobState.FINISHED]
        failing.down = False
        assert (await finish.write()).state is JobState.FINISHED  # type: ignore[union-attr]
        assert await raw.get_result("job-1") == b"[1]"
    finally:
        await store.close()


async def test_a_held_insert_that_fails_fails_its_holder_and_leaves_nothing(backend: Backend) -> None:
    store = WriteBehindStore(backend.new_store(), enabled=True)
    await store.open()
    try:
        job = make_job("job-1")
        await (await store.hold_insert(job, {})).write()
        again = await store.hold_insert(job, {})  # the same id twice: the second insert fails
        assert await store.update_job("job-1", JobState.RUNNING) is not None  # goes on regardless
        with pytest.raises(Exception):  # noqa: B017 - each backend names a duplicate key its own way
            await again.write()
        assert (await store.get_job("job-1")).state is JobState.RUNNING  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_with_write_behind_off_nothing_is_held(backend: Backend, raw: Store) -> None:
    store = WriteBehindStore(backend.new_store(), enabled=False)
    await store.open()
    try:
        job = make_job("job-1")
        await store.hold_insert(job, {"k": 1})
        assert await raw.get_job("job-1") == job  # stored before it could be sent
        assert await store.hold_finish(job, b"1") is None  # stored before it is answered
    finally:
        await store.close()


class _SlowKills(WriteBehindStore):
    """A pass-through store (write-behind off) whose job updates wait at a gate."""

    def __init__(self, inner: Store, gate: asyncio.Event) -> None:
        super().__init__(inner, enabled=False)
        self._gate = gate
        self.at_gate = asyncio.Event()

    async def update_job(
        self, job_id: str, target: JobState, *, error: Mapping[str, str] | None = None
    ) -> JobRecord | None:
        self.at_gate.set()
        await self._gate.wait()
        return await super().update_job(job_id, target, error=error)


class _FailingFinishes(WriteBehindStore):
    """A pass-through store (write-behind off) that cannot store finishes while ``down``."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner, enabled=False)
        self.down = False

    async def finish_job(
        self, job_id: str, result_json: bytes, *, end_time: datetime.datetime | None = None
    ) -> JobRecord | None:
        if self.down:
            raise StoreUnavailable("metadata store unavailable: test outage")
        return await super().finish_job(job_id, result_json, end_time=end_time)


async def test_a_held_finish_queues_its_callback_only_once_stored(held: WriteBehindStore, raw: Store) -> None:
    job = dataclasses.replace(make_job("job-1"), callback_url="https://client.example.com/done")
    await (await held.hold_insert(job, {})).write()
    finish = await held.hold_finish(job, b"42")
    assert finish is not None

    assert await held.list_callbacks() == []  # the end is not durable yet: nothing to deliver
    assert await held.claim_callbacks("server-a", lease_s=60, own=True) == []

    claimed = await held.claim_callbacks("server-a", lease_s=60, job_id="job-1")  # stores the finish first
    assert [callback.job_id for callback in claimed] == ["job-1"]
    assert (await raw.get_job("job-1")).state is JobState.FINISHED  # type: ignore[union-attr]
