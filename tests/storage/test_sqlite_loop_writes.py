"""SQLite: the job path's writes run on the event loop, never wait there for a lock, and leave
WAL checkpoints to the worker thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobserver.common.errors import StoreUnavailable
from jobserver.common.records import BinaryType, to_epoch_ms
from jobserver.common.states import JobState
from jobserver.storage import create_store
from jobserver.storage.sqlite import SqliteStore
from jobserver.storage.sqlite import connection as sqlite_connection
from jobserver.storage.sqlite import store as sqlite
from tests.storage.factories import at, make_job, put_bytes


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = create_store(f"sqlite://{tmp_path / 'db.sqlite'}", blob_dir=tmp_path / "blobs")
    assert isinstance(store, SqliteStore)
    await store.open()
    yield store
    await store.close()


async def test_a_binary_another_process_adds_is_the_next_one_found(
    store: SqliteStore, tmp_path: Path
) -> None:
    sha256 = await put_bytes(store, tmp_path, b"v1")
    first = await store.add_binary_version("app", BinaryType.WHEEL, sha256, 2, at(1000))
    assert await store.latest_binary("app") == first
    other = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    try:
        other.execute(
            "INSERT INTO binaries (app_name, binary_type, upload_time, sha256, size_bytes)"
            " VALUES ('app', 'Wheel', ?, ?, 2)",
            (to_epoch_ms(at(2000)), sha256),
        )
    finally:
        other.close()
    newer = await store.latest_binary("app")
    assert newer is not None and newer.id != first.id and newer.upload_time == at(2000)


def add_version_elsewhere(path: Path, sha256: str, upload_ms: int) -> None:
    """Another process uploads a version of "app" (as far as our connections can tell)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute(
            "INSERT INTO binaries (app_name, binary_type, upload_time, sha256, size_bytes)"
            " VALUES ('app', 'Wheel', ?, ?, 2)",
            (upload_ms, sha256),
        )
    finally:
        other.close()


@pytest.mark.parametrize("when", ["before the store looks again", "after it has"])
async def test_a_binary_another_process_adds_around_the_stores_own_writes_is_found(
    store: SqliteStore, tmp_path: Path, when: str
) -> None:
    """The store's own job writes change the WAL's header too; the store looks again after each
    (once its task yields). Another process's commit just before or after that is not missed."""
    sha256 = await put_bytes(store, tmp_path, b"v1")
    first = await store.add_binary_version("app", BinaryType.WHEEL, sha256, 2, at(1000))
    assert await store.latest_binary("app") == first
    for number, upload_ms in enumerate((2000, 3000)):
        await store.insert_job(make_job(f"job-{number}"), {})
        if when == "after it has":
            await asyncio.sleep(0)  # the store's look after its own write
        add_version_elsewhere(tmp_path / "db.sqlite", sha256, to_epoch_ms(at(upload_ms)))
        newer = await store.latest_binary("app")
        assert newer is not None and newer.upload_time == at(upload_ms)
        assert await store.latest_binary("app") == newer  # and remembered


def hold_write_lock(path: Path, seconds: float) -> threading.Event:
    """Another process's writer, as far as our connections can tell: holds the lock for a while."""
    taken = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        taken.set()
        threading.Event().wait(seconds)
        connection.execute("ROLLBACK")
        connection.close()

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(5)
    return taken


async def test_writes_wait_for_a_lock_held_elsewhere_without_blocking_the_loop(
    store: SqliteStore, tmp_path: Path
) -> None:
    hold_write_lock(tmp_path / "db.sqlite", 0.5)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await store.insert_job(make_job("job-1"), {"input": 1})
    waited_s = loop.time() - started
    ticker.cancel()

    assert waited_s >= 0.3  # it waited for the lock (on the worker thread) …
    assert ticks >= 10  # … while the loop went on
    assert (await store.get_job("job-1")) is not None
    finished = await store.finish_job("job-1", b'{"ok":true}')
    assert finished is not None and finished.state is JobState.FINISHED


async def test_a_lock_held_past_the_busy_timeout_is_an_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_connection, "BUSY_TIMEOUT_MS", 200)
    store = create_store(f"sqlite://{tmp_path / 'db.sqlite'}", blob_dir=tmp_path / "blobs")
    await store.open()
    try:
        hold_write_lock(tmp_path / "db.sqlite", 1.5)
        with pytest.raises(StoreUnavailable, match="database is locked"):
            await store.insert_job(make_job("job-1"), {})
        await asyncio.sleep(1.5)
        await store.insert_job(make_job("job-1"), {})  # and works again once the lock is gone
    finally:
        await store.close()


async def test_large_values_are_written_on_the_worker_thread(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    original = SqliteStore._call

    async def counted(self: SqliteStore, function):  # type: ignore[no-untyped-def]
        threads.append("worker")
        return await original(self, function)

    monkeypatch.setattr(SqliteStore, "_call", counted)
    await store.insert_job(make_job("small"), {})
    await store.finish_job("small", b"[1]")
    assert threads == []
    await store.insert_job(make_job("large"), {})
    big = b'"' + b"x" * (sqlite._LOOP_WRITE_MAX_BYTES + 1) + b'"'
    await store.finish_job("large", big)
    assert threads == ["worker"]
    assert await store.get_result("large") == big


async def test_the_worker_thread_checkpoints_the_wal_the_loop_writes(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints: list[str] = []
    original = sqlite_connection.checkpoint

    def counted(connection: sqlite3.Connection) -> None:
        checkpoints.append(threading.current_thread().name)
        original(connection)

    monkeypatch.setattr(sqlite_connection, "checkpoint", counted)
    for number in range(sqlite._CHECKPOINT_AFTER_WRITES):
        await store.insert_job(make_job(f"job-{number}"), {})
    await asyncio.sleep(0.2)
    assert len(checkpoints) == 1 and checkpoints[0].startswith("sqlite-store")


async def test_the_wal_starts_over_after_checkpoints(store: SqliteStore, tmp_path: Path) -> None:
    """The loop's writes never wait for a checkpoint, so one must not race them either: a WAL
    that no checkpoint ever catches up with grows by every write (~60 KB a job)."""
    for number in range(600):
        await store.latest_binary("app")  # the loop's reads go on meanwhile, as in the server
        await store.insert_job(make_job(f"job-{number}"), {"input": {"n": number}})
        await store.finish_job(f"job-{number}", b"[1]")
        if number % 50 == 0:
            await asyncio.sleep(0.01)  # let the worker thread's checkpoint run
    assert (tmp_path / "db.sqlite-wal").stat().st_size < 8 * 1024 * 1024
