"""The storage contract (jobserver/storage/base.py) for blobs and binaries, checked on every backend."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from jobserver.common.records import BinaryRecord, BinaryType
from jobserver.common.states import JobState
from jobserver.storage import Store
from tests.storage.conftest import Backend
from tests.storage.factories import at, make_job, put_bytes, upload


async def test_put_blob_takes_the_file_and_blob_file_gives_the_bytes_back(
    store: Store, tmp_path: Path
) -> None:
    content = b"\x00wheel bytes\xff" * 1000
    sha256 = await put_bytes(store, tmp_path, content)

    assert (await store.blob_file(sha256)).read_bytes() == content


async def test_blob_larger_than_a_chunk_round_trips(store: Store, tmp_path: Path) -> None:
    content = bytes(range(256)) * (10 * 1024 + 7)  # ~2.5 MiB, not a multiple of any chunk size

    sha256 = await put_bytes(store, tmp_path, content)

    assert hashlib.sha256((await store.blob_file(sha256)).read_bytes()).hexdigest() == sha256


async def test_blob_file_of_unknown_hash_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.blob_file("0" * 64)
    with pytest.raises(KeyError):
        await store.blob_file("../../etc/passwd")


async def test_blob_stored_once_for_two_names(store: Store, backend: Backend, tmp_path: Path) -> None:
    first = await upload(store, tmp_path, "app-a", b"same bytes")
    second = await upload(store, tmp_path, "app-b", b"same bytes")

    assert first.sha256 == second.sha256
    assert backend.stored_blob_count() == 1
    assert (await store.blob_file(first.sha256)).read_bytes() == b"same bytes"


async def test_adding_version_of_missing_blob_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.add_binary_version("app", BinaryType.JAR, "1" * 64, 10, at(0))
    assert await store.latest_binary("app") is None


async def test_latest_binary_is_newest_upload(store: Store, tmp_path: Path) -> None:
    await upload(store, tmp_path, "app", b"v1", upload_ms=1000)
    newest = await upload(store, tmp_path, "app", b"v3", upload_ms=3000)
    await upload(store, tmp_path, "app", b"v2", upload_ms=2000)

    assert await store.latest_binary("app") == newest
    assert await store.latest_binary("other") is None


async def test_latest_binary_follows_each_upload_and_delete(store: Store, tmp_path: Path) -> None:
    first = await upload(store, tmp_path, "app", b"v1", upload_ms=1000)
    await store.insert_job(make_job("job-1", binary_ids=(first.id,)), {})  # a job's write between
    assert await store.latest_binary("app") == first
    second = await upload(store, tmp_path, "app", b"v2", upload_ms=2000)
    assert await store.latest_binary("app") == second
    assert await store.delete_binary("app")
    assert await store.latest_binary("app") is None
    third = await upload(store, tmp_path, "app", b"v3", upload_ms=3000)
    assert await store.latest_binary("app") == third


async def test_binary_version_round_trips_all_fields(store: Store, tmp_path: Path) -> None:
    sha256 = await put_bytes(store, tmp_path, b"jar bytes")
    added = await store.add_binary_version("app", BinaryType.JAR, sha256, 9, at(1234))

    assert added == BinaryRecord(added.id, "app", BinaryType.JAR, at(1234), sha256, 9)
    assert await store.get_binaries([added.id]) == [added]


async def test_latest_binaries_lists_newest_version_of_each_name_by_name(
    store: Store, tmp_path: Path
) -> None:
    await upload(store, tmp_path, "zeta", b"z1", upload_ms=1)
    zeta = await upload(store, tmp_path, "zeta", b"z2", upload_ms=2)
    alpha = await upload(store, tmp_path, "alpha", b"a1", upload_ms=5)

    assert await store.latest_binaries() == [alpha, zeta]


async def test_get_binaries_keeps_requested_order_and_skips_unknown_ids(store: Store, tmp_path: Path) -> None:
    one = await upload(store, tmp_path, "one", b"1")
    two = await upload(store, tmp_path, "two", b"2")

    assert await store.get_binaries([two.id, 999_999, one.id, two.id]) == [two, one]
    assert await store.get_binaries([]) == []


async def test_deleting_binary_removes_every_version_and_its_unused_blobs(
    store: Store, tmp_path: Path
) -> None:
    old = await upload(store, tmp_path, "app", b"old", upload_ms=1)
    new = await upload(store, tmp_path, "app", b"new", upload_ms=2)
    assert await store.latest_binary("app") == new  # looked up as a job would, before the delete
    assert (await store.blob_file(new.sha256)).read_bytes() == b"new"

    assert await store.delete_binary("app") is True

    for sha256 in (old.sha256, new.sha256):
        with pytest.raises(KeyError):
            await store.blob_file(sha256)
    assert await store.latest_binary("app") is None
    assert await store.get_binaries([old.id, new.id]) == []


async def test_deleting_binary_keeps_blob_used_by_other_name(store: Store, tmp_path: Path) -> None:
    doomed = await upload(store, tmp_path, "doomed", b"shared bytes")
    kept = await upload(store, tmp_path, "kept", b"shared bytes")

    await store.delete_binary("doomed")

    assert await store.latest_binary("kept") == kept
    assert (await store.blob_file(doomed.sha256)).read_bytes() == b"shared bytes"


async def test_deleting_unknown_binary_returns_false(store: Store) -> None:
    assert await store.delete_binary("nothing") is False


async def test_binary_users_lists_only_unfinished_jobs_of_any_version(store: Store, tmp_path: Path) -> None:
    v1 = await upload(store, tmp_path, "app", b"v1", upload_ms=1)
    v2 = await upload(store, tmp_path, "app", b"v2", upload_ms=2)
    other = await upload(store, tmp_path, "other", b"o", upload_ms=3)
    jobs = {
        "on-v1-running": (JobState.RUNNING, (v1.id,)),
        "on-v2-started": (JobState.STARTED, (other.id, v2.id)),
        "on-v1-restarting": (JobState.RESTARTING, (v1.id,)),
        "on-v2-finished": (JobState.FINISHED, (v2.id,)),
        "on-v1-error": (JobState.ERROR, (v1.id,)),
        "on-other-running": (JobState.RUNNING, (other.id,)),
    }
    for job_id, (state, binary_ids) in jobs.items():
        await store.insert_job(make_job(job_id, state=state, binary_ids=binary_ids), {})

    assert sorted(await store.binary_users("app")) == ["on-v1-restarting", "on-v1-running", "on-v2-started"]
    assert await store.binary_users("unknown") == []
