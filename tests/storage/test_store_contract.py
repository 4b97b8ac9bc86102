"""The storage contract (jobserver/storage/base.py): life cycle, contexts and jobs, checked on every
backend. Blobs and binaries: test_store_binaries.py; retention: test_store_retention.py."""

from __future__ import annotations

import asyncio
import json

from jobserver.common.records import ContextRecord, JobRecord, utc_now
from jobserver.common.states import ContextState, JobState
from jobserver.storage import Store
from jobserver.storage.migrations import list_migrations
from tests.storage.conftest import Backend
from tests.storage.factories import at, make_context, make_job

# --- life cycle ------------------------------------------------------------------------------------


async def test_opening_creates_blob_folder(store: Store, backend: Backend) -> None:
    assert backend.blob_dir.is_dir()


async def test_reopening_store_keeps_data_and_applies_no_migration_twice(backend: Backend) -> None:
    first = backend.new_store()
    await first.open()
    await first.insert_context(make_context("ctx-1"))
    await first.close()

    second = backend.new_store()
    await second.open()
    try:
        assert await second.latest_context("shared") == make_context("ctx-1")
    finally:
        await second.close()
    assert backend.applied_versions() == [migration.version for migration in list_migrations(backend.dialect)]


async def test_two_stores_opening_together_migrate_once(backend: Backend) -> None:
    stores = [backend.new_store(), backend.new_store()]
    await asyncio.gather(*(store.open() for store in stores))
    for store in stores:
        await store.close()
    assert backend.applied_versions() == [migration.version for migration in list_migrations(backend.dialect)]


# --- contexts --------------------------------------------------------------------------------------


async def test_context_round_trips_every_field(store: Store) -> None:
    context = ContextRecord(
        id="ctx-1",
        name="ünïcode ctx",
        config={"spark.executor.memory": "2g", "nested": {"list": [1, 2.5, None, True]}, "is-adhoc": True},
        state=ContextState.RUNNING,
        start_time=at(17),
        end_time=None,
        error=None,
        application_id="app-2024-0001",
        web_ui_url="http://driver:4040",
        is_adhoc=True,
    )
    await store.insert_context(context)

    stored = await store.latest_context("ünïcode ctx")
    assert stored == context
    assert stored is not None and list(stored.config) == ["spark.executor.memory", "nested", "is-adhoc"]
    assert await store.list_contexts() == [context]


async def test_latest_context_is_most_recently_started_of_name(store: Store) -> None:
    await store.insert_context(make_context("old", start_ms=1, state=ContextState.FINISHED))
    await store.insert_context(make_context("new", start_ms=3, state=ContextState.ERROR))
    await store.insert_context(make_context("middle", start_ms=2))
    await store.insert_context(make_context("elsewhere", name="other", start_ms=9))

    latest = await store.latest_context("shared")
    assert latest is not None and latest.id == "new"
    assert await store.latest_context("missing") is None


async def test_list_contexts_newest_first_with_state_filter(store: Store) -> None:
    await store.insert_context(make_context("a", name="a", start_ms=1, state=ContextState.RUNNING))
    await store.insert_context(make_context("b", name="b", start_ms=3, state=ContextState.FINISHED))
    await store.insert_context(make_context("c", name="c", start_ms=2, state=ContextState.STARTED))

    assert [c.id for c in await store.list_contexts()] == ["b", "c", "a"]
    running_or_started = await store.list_contexts([ContextState.RUNNING, ContextState.STARTED])
    assert [c.id for c in running_or_started] == ["c", "a"]
    assert await store.list_contexts([]) == []


async def test_context_update_sets_driver_details_only_when_given(store: Store) -> None:
    await store.insert_context(make_context("ctx-1"))

    running = await store.update_context(
        "ctx-1", ContextState.RUNNING, application_id="app-1", web_ui_url="http://ui"
    )
    stopping = await store.update_context("ctx-1", ContextState.STOPPING)

    assert running is not None and (running.state, running.application_id) == (ContextState.RUNNING, "app-1")
    assert stopping is not None
    assert (stopping.application_id, stopping.web_ui_url, stopping.end_time) == ("app-1", "http://ui", None)


async def test_context_entering_error_stores_error_and_end_time(store: Store) -> None:
    await store.insert_context(make_context("ctx-1"))
    before = utc_now()

    failed = await store.update_context("ctx-1", ContextState.ERROR, error="driver lost")

    assert failed is not None and failed.error == "driver lost"
    assert failed.end_time is not None and before <= failed.end_time <= utc_now()
    assert await store.latest_context("shared") == failed


async def test_context_cas_refuses_finished_to_running(store: Store) -> None:
    await store.insert_context(make_context("ctx-1", state=ContextState.STOPPING))
    finished = await store.update_context("ctx-1", ContextState.FINISHED)

    assert await store.update_context("ctx-1", ContextState.RUNNING, application_id="late") is None
    assert await store.latest_context("shared") == finished
    assert await store.update_context("unknown", ContextState.RUNNING) is None


# --- jobs ------------------------------------------------------------------------------------------


async def test_job_round_trips_class_path_uris_and_callback(store: Store) -> None:
    job = JobRecord(
        id="job-1",
        context_id="ctx-1",
        context_name="shared",
        class_path="example.WordCount",
        state=JobState.STARTED,
        start_time=at(42),
        binary_ids=(7, 3, 5),
        uris=("hdfs:///libs/a.jar", "https://repo/b.whl"),
        callback_url="http://client/callback",
    )
    await store.insert_job(job, {"input": {"strings": ["a", "b"]}})

    assert await store.get_job("job-1") == job
    assert await store.get_job("missing") is None


async def test_list_jobs_newest_first_with_limit_and_state_filter(store: Store) -> None:
    for number, state in enumerate([JobState.FINISHED, JobState.RUNNING, JobState.FINISHED, JobState.ERROR]):
        await store.insert_job(make_job(f"job-{number}", start_ms=number, state=state), {})

    assert [job.id for job in await store.list_jobs(limit=10)] == ["job-3", "job-2", "job-1", "job-0"]
    assert [job.id for job in await store.list_jobs(limit=2)] == ["job-3", "job-2"]
    assert [job.id for job in await store.list_jobs(10, JobState.FINISHED)] == ["job-2", "job-0"]
    assert await store.list_jobs(limit=0) == []


async def test_jobs_in_context_filters_by_state(store: Store) -> None:
    await store.insert_job(make_job("a", start_ms=1, state=JobState.RUNNING, binary_ids=(1, 2)), {})
    await store.insert_job(make_job("b", start_ms=2, state=JobState.FINISHED), {})
    await store.insert_job(make_job("c", start_ms=3, context_id="ctx-2"), {})

    assert [job.id for job in await store.jobs_in_context("ctx-1")] == ["b", "a"]
    running = await store.jobs_in_context("ctx-1", [JobState.RUNNING, JobState.STARTED])
    assert [(job.id, job.binary_ids) for job in running] == [("a", (1, 2))]


async def test_entering_final_state_sets_end_time(store: Store) -> None:
    await store.insert_job(make_job("job-1"), {})
    running = await store.update_job("job-1", JobState.RUNNING)
    before = utc_now()

    finished = await store.update_job("job-1", JobState.FINISHED)

    assert running is not None and running.end_time is None
    assert finished is not None and finished.state is JobState.FINISHED
    assert finished.end_time is not None and before <= finished.end_time <= utc_now()
    assert await store.get_job("job-1") == finished


async def test_job_error_map_is_stored_when_entering_error(store: Store) -> None:
    await store.insert_job(make_job("job-1", binary_ids=(4,)), {})
    error = {"message": "boom", "errorClass": "ValueError", "stack": "Traceback…\n  line 1"}

    failed = await store.update_job("job-1", JobState.ERROR, error=error)

    assert failed is not None and failed.error == error and failed.binary_ids == (4,)
    assert await store.get_job("job-1") == failed


async def test_killed_job_stays_killed_when_finish_arrives_late(store: Store) -> None:
    await store.insert_job(make_job("job-1", state=JobState.RUNNING), {})
    killed = await store.update_job("job-1", JobState.KILLED)

    assert await store.update_job("job-1", JobState.FINISHED) is None
    assert await store.update_job("job-1", JobState.ERROR, error={"message": "late"}) is None
    assert await store.update_job("job-1", JobState.RUNNING) is None
    assert await store.get_job("job-1") == killed


async def test_concurrent_finish_and_kill_have_exactly_one_winner(store: Store) -> None:
    await store.insert_job(make_job("job-1", state=JobState.RUNNING), {})

    results = await asyncio.gather(
        store.update_job("job-1", JobState.FINISHED), store.update_job("job-1", JobState.KILLED)
    )

    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert await store.get_job("job-1") == winners[0]


async def test_update_of_unknown_job_changes_nothing(store: Store) -> None:
    assert await store.update_job("missing", JobState.RUNNING) is None
    assert await store.get_job("missing") is None


async def test_job_config_and_result_round_trip_bytes_exactly(store: Store) -> None:
    config = {"input": {"strings": ["a", "b", "ü"]}, "z": 1, "a": [None, 1.5, True]}
    result = json.dumps({"result": ["x", "ÿ"]}, ensure_ascii=False).encode() + b"\x00\xff\n"
    await store.insert_job(make_job("job-1"), config)

    await store.finish_job("job-1", result)

    stored_config = await store.get_job_config("job-1")
    assert stored_config == config and list(stored_config) == ["input", "z", "a"]
    assert await store.get_result("job-1") == result


async def test_large_config_and_result_are_stored_and_read_back_intact(store: Store) -> None:
    config = {"input": {"rows": [f"row {number} ü" for number in range(100_000)]}}  # ~1.4 MB of JSON
    result = bytes(range(256)) * (16 * 1024) + b"end"  # 4 MiB and a bit, every byte value
    await store.insert_job(make_job("job-1"), config)

    finished = await store.finish_job("job-1", result)

    assert finished is not None and finished.state is JobState.FINISHED
    assert await store.get_job_config("job-1") == config
    assert await store.get_result("job-1") == result


async def test_missing_config_and_result_are_none(store: Store) -> None:
    await store.insert_job(make_job("job-1"), {})

    assert await store.get_result("job-1") is None
    assert await store.get_job_config("missing") is None


async def test_a_job_that_may_no_longer_finish_keeps_no_result(store: Store) -> None:
    await store.insert_job(make_job("job-1", state=JobState.RUNNING), {})
    killed = await store.update_job("job-1", JobState.KILLED)

    assert await store.finish_job("job-1", b'"late"') is None
    assert await store.finish_job("missing", b"{}") is None
    assert await store.get_result("job-1") is None
    assert await store.get_result("missing") is None
    assert await store.get_job("job-1") == killed


async def test_state_changes_return_the_whole_stored_record(store: Store) -> None:
    job = make_job("job-1", binary_ids=(7, 3, 5))
    await store.insert_job(job, {})

    running = await store.update_job("job-1", JobState.RUNNING)
    assert running == await store.get_job("job-1")
    assert running is not None and running.binary_ids == (7, 3, 5)
    finished = await store.finish_job("job-1", b'{"ok": true}')
    assert finished == await store.get_job("job-1")
    assert finished is not None and finished.binary_ids == (7, 3, 5) and finished.end_time is not None
