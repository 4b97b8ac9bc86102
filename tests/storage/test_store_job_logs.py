"""Job logs (Store.append_job_log, Store.job_log), checked on every backend."""

from __future__ import annotations

from jobserver.common.states import JobState
from jobserver.storage import Store
from tests.storage.conftest import Backend
from tests.storage.factories import at, make_job


async def test_lines_are_paged_in_order_and_counted(store: Store) -> None:
    await store.insert_job(make_job("job-1", state=JobState.RUNNING), {})
    await store.append_job_log("job-1", 0, ["a", "b"])
    await store.append_job_log("job-1", 2, ["c", "d", "e"])

    assert await store.job_log("job-1", 0, 100) == (5, ["a", "b", "c", "d", "e"])
    assert await store.job_log("job-1", 1, 2) == (5, ["b", "c"])
    assert await store.job_log("job-1", 5, 10) == (5, [])
    assert await store.job_log("job-1", 0, 0) == (5, [])


async def test_a_batch_sent_twice_is_stored_once(store: Store) -> None:
    await store.insert_job(make_job("job-1", state=JobState.RUNNING), {})
    await store.append_job_log("job-1", 0, ["first", "second"])
    await store.append_job_log("job-1", 0, ["first", "second"])

    assert await store.job_log("job-1", 0, 10) == (2, ["first", "second"])


async def test_a_job_without_lines_has_none(store: Store) -> None:
    await store.insert_job(make_job("quiet", state=JobState.RUNNING), {})
    assert await store.job_log("quiet", 0, 10) == (0, [])
    assert await store.job_log("unknown", 0, 10) == (0, [])


async def test_retention_takes_a_jobs_lines_with_it(store: Store, backend: Backend) -> None:
    await store.insert_job(make_job("old", state=JobState.ERROR, end_ms=1), {})
    await store.append_job_log("old", 0, ["gone"])
    await store.insert_job(make_job("recent", state=JobState.RUNNING), {})
    await store.append_job_log("recent", 0, ["kept"])

    await store.delete_expired(at(10_000))

    assert await store.job_log("old", 0, 10) == (0, [])
    assert await store.job_log("recent", 0, 10) == (1, ["kept"])
    assert backend.row_count("job_logs") == 1
