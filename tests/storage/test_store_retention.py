"""Retention (Store.delete_expired), checked on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobserver.common.records import BinaryType
from jobserver.common.states import ContextState, JobState
from jobserver.storage import Store
from jobserver.storage.base import BLOB_GRACE_PERIOD_S
from tests.storage.conftest import Backend
from tests.storage.factories import at, make_context, make_job, put_bytes, upload

CUTOFF_MS = 10_000
OLD_MS = CUTOFF_MS - 1
RECENT_MS = CUTOFF_MS + 1
NOTHING = {"jobs": 0, "contexts": 0, "blobs": 0}


async def test_old_final_jobs_go_with_their_config_result_and_class_path(
    store: Store, backend: Backend
) -> None:
    await store.insert_job(make_job("old-FINISHED", binary_ids=(1, 2)), {"a": 1})
    await store.finish_job("old-FINISHED", b'"result"', end_time=at(OLD_MS))
    for state in (JobState.ERROR, JobState.KILLED):
        await store.insert_job(
            make_job(f"old-{state}", state=state, binary_ids=(1, 2), end_ms=OLD_MS), {"a": 1}
        )
    await store.insert_job(make_job("recent", binary_ids=(3,)), {})
    await store.finish_job("recent", b'"kept"', end_time=at(RECENT_MS))

    counts = await store.delete_expired(at(CUTOFF_MS))

    assert counts == {"jobs": 3, "contexts": 0, "blobs": 0}
    assert [job.id for job in await store.list_jobs(10)] == ["recent"]
    assert await store.get_job_config("old-FINISHED") is None
    assert await store.get_result("old-FINISHED") is None
    assert await store.get_result("recent") == b'"kept"'
    assert [backend.row_count(table) for table in ("job_configs", "job_results", "job_binaries")] == [1, 1, 1]


async def test_jobs_in_a_non_final_state_stay_whatever_their_age(store: Store) -> None:
    for state in (JobState.STARTED, JobState.RUNNING, JobState.RESTARTING):
        # An end time on an active job should not happen; if it does, the job must still stay.
        await store.insert_job(make_job(f"active-{state}", state=state, start_ms=-(10**9), end_ms=OLD_MS), {})
    await store.insert_job(make_job("never-ended", state=JobState.RUNNING, start_ms=-(10**9)), {})

    assert await store.delete_expired(at(10**12)) == NOTHING
    assert len(await store.list_jobs(10)) == 4


async def test_old_final_contexts_go_and_active_ones_stay(store: Store) -> None:
    for state in ContextState:
        await store.insert_context(
            make_context(f"old-{state}", name=f"old-{state}", state=state, start_ms=-(10**9), end_ms=OLD_MS)
        )
    await store.insert_context(
        make_context("recent", name="recent", state=ContextState.FINISHED, end_ms=RECENT_MS)
    )
    await store.insert_context(
        make_context("running", name="running", state=ContextState.RUNNING, start_ms=-(10**9))
    )

    counts = await store.delete_expired(at(CUTOFF_MS))

    assert counts == {"jobs": 0, "contexts": 3, "blobs": 0}
    kept = sorted(context.id for context in await store.list_contexts())
    expected = sorted(
        [f"old-{state}" for state in ContextState if not state.is_final] + ["recent", "running"]
    )
    assert kept == expected


async def test_only_unreferenced_blobs_older_than_the_grace_period_go(
    store: Store, backend: Backend, tmp_path: Path
) -> None:
    used = await upload(store, tmp_path, "app", b"used bytes")
    orphan = await put_bytes(store, tmp_path, b"orphan bytes")
    young_orphan = await put_bytes(store, tmp_path, b"young orphan bytes")
    backend.age_blob(used.sha256, BLOB_GRACE_PERIOD_S + 60)
    backend.age_blob(orphan, BLOB_GRACE_PERIOD_S + 60)

    # Blobs do not depend on ``before``: a cut-off far in the past still removes old orphans.
    counts = await store.delete_expired(at(0))

    assert counts == {"jobs": 0, "contexts": 0, "blobs": 1}
    with pytest.raises(KeyError):
        await store.blob_file(orphan)
    assert (await store.blob_file(used.sha256)).read_bytes() == b"used bytes"
    assert (await store.blob_file(young_orphan)).read_bytes() == b"young orphan bytes"
    assert backend.stored_blob_count() == 2


async def test_putting_an_old_orphan_blob_again_restarts_its_grace_period(
    store: Store, backend: Backend, tmp_path: Path
) -> None:
    sha256 = await put_bytes(store, tmp_path, b"uploaded twice")
    backend.age_blob(sha256, BLOB_GRACE_PERIOD_S + 60)

    await put_bytes(store, tmp_path, b"uploaded twice")
    assert await store.delete_expired(at(0)) == NOTHING
    binary = await store.add_binary_version("app", BinaryType.WHEEL, sha256, 14, at(0))

    assert (await store.blob_file(binary.sha256)).read_bytes() == b"uploaded twice"


async def test_deleting_again_finds_nothing(store: Store, backend: Backend, tmp_path: Path) -> None:
    await store.insert_job(make_job("old", state=JobState.FINISHED, end_ms=OLD_MS), {})
    await store.insert_context(make_context("old", state=ContextState.ERROR, end_ms=OLD_MS))
    orphan = await put_bytes(store, tmp_path, b"orphan")
    backend.age_blob(orphan, BLOB_GRACE_PERIOD_S + 60)

    assert await store.delete_expired(at(CUTOFF_MS)) == {"jobs": 1, "contexts": 1, "blobs": 1}
    assert await store.delete_expired(at(CUTOFF_MS)) == NOTHING
