"""SQLite: the store shares its file with other connections and processes. A write lock held
elsewhere makes its writes wait without holding up the event loop, and past the busy timeout it
is an outage; other processes' commits are seen by the next lookup; and the WAL stays bounded
however many jobs the store writes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from jobserver.common.errors import StoreUnavailable
from jobserver.common.records import BinaryType, to_epoch_ms
from jobserver.common.states import JobState
from jobserver.storage import Store, create_store
from tests.storage.factories import at, make_context, make_job, put_bytes
from tests.support import wait_until

HOLD_S = 0.6


def open_store(tmp_path: Path, **options: float) -> Store:
    return create_store(f"sqlite://{tmp_path / 'db.sqlite'}", blob_dir=tmp_path / "blobs", **options)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(tmp_path)
    await opened.open()
    yield opened
    await opened.close()


def add_version_elsewhere(path: Path, sha256: str, upload_ms: int) -> None:
    """Another process uploads a version of "app" (as far as the store's connections can tell)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute(
            "INSERT INTO binaries (app_name, binary_type, upload_time, sha256, size_bytes)"
            " VALUES ('app', 'Wheel', ?, ?, 2)",
            (upload_ms, sha256),
        )
    finally:
        other.close()


@contextlib.contextmanager
def write_lock_held_elsewhere(path: Path, seconds: float) -> Iterator[threading.Event]:
    """Another process's writer, as far as the store's connections can tell: takes the write lock
    and holds it for ``seconds``. Entered once the lock is taken; the event is set just before
    the lock is let go, so a write that got through must find it set."""
    taken, letting_go = threading.Event(), threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            taken.set()
            time.sleep(seconds)  # holding the lock is what the tests are about
            letting_go.set()
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    holder = threading.Thread(target=hold, name="lock-holder")
    holder.start()
    try:
        assert taken.wait(5), "the other writer did not get the lock"
        yield letting_go
    finally:
        holder.join()


@contextlib.asynccontextmanager
async def longest_loop_stall() -> AsyncIterator[list[float]]:
    """The longest time, in seconds, the event loop went without running a ready task while
    the block ran (the list's one item, filled in at the end)."""
    loop = asyncio.get_running_loop()
    longest = [0.0]
    last = [loop.time()]

    def note_tick() -> None:
        now = loop.time()
        longest[0] = max(longest[0], now - last[0])
        last[0] = now

    async def tick() -> None:
        while True:
            note_tick()
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # the ticker's first tick
    try:
        yield longest
    finally:
        note_tick()  # a loop blocked to the end never let the ticker run again
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker


async def test_a_binary_another_process_adds_is_found_by_the_next_lookup(
    store: Store, tmp_path: Path
) -> None:
    sha256 = await put_bytes(store, tmp_path, b"v1")
    first = await store.add_binary_version("app", BinaryType.WHEEL, sha256, 2, at(1000))
    assert await store.latest_binary("app") == first
    for number, upload_ms in enumerate((2000, 3000, 4000)):
        await store.insert_job(make_job(f"job-{number}"), {})  # the store's own writes between
        add_version_elsewhere(tmp_path / "db.sqlite", sha256, to_epoch_ms(at(upload_ms)))

        newer = await store.latest_binary("app")

        assert newer is not None and newer.upload_time == at(upload_ms)
        assert (await store.blob_file(newer.sha256)).read_bytes() == b"v1"


async def state_of(store: Store, job_id: str) -> JobState | None:
    job = await store.get_job(job_id)
    return None if job is None else job.state


async def job_2_inserted(store: Store) -> bool:
    return await state_of(store, "job-2") is JobState.STARTED


async def job_1_killed(store: Store) -> bool:
    return await state_of(store, "job-1") is JobState.KILLED


async def job_1_finished(store: Store) -> bool:
    finished = await state_of(store, "job-1") is JobState.FINISHED
    return finished and await store.get_result("job-1") == b'{"ok":true}'


async def context_inserted(store: Store) -> bool:
    return await store.latest_context("shared") == make_context("ctx-1")


# Each write of the store, and what shows it was made.
WRITES: dict[str, tuple[Callable[[Store], Awaitable[object]], Callable[[Store], Awaitable[bool]]]] = {
    "insert_job": (lambda store: store.insert_job(make_job("job-2"), {"input": 2}), job_2_inserted),
    "update_job": (lambda store: store.update_job("job-1", JobState.KILLED), job_1_killed),
    "finish_job": (lambda store: store.finish_job("job-1", b'{"ok":true}'), job_1_finished),
    "insert_context": (lambda store: store.insert_context(make_context("ctx-1")), context_inserted),
}


@pytest.mark.parametrize("write", list(WRITES))
async def test_writes_wait_for_a_lock_held_elsewhere_without_blocking_the_loop(
    store: Store, tmp_path: Path, write: str
) -> None:
    make, made = WRITES[write]
    await store.insert_job(make_job("job-1", state=JobState.RUNNING), {"input": 1})

    async with longest_loop_stall() as stall:
        with write_lock_held_elsewhere(tmp_path / "db.sqlite", HOLD_S) as letting_go:
            await make(store)
            assert letting_go.is_set()  # it waited for the lock …
    assert stall[0] < HOLD_S / 2  # … while the loop went on
    assert await made(store)


async def test_a_lock_held_past_the_busy_timeout_is_an_outage_that_ends_with_it(tmp_path: Path) -> None:
    store = open_store(tmp_path, busy_timeout_s=0.2)
    await store.open()
    try:
        await store.insert_job(make_job("job-0"), {})
        with write_lock_held_elsewhere(tmp_path / "db.sqlite", 1.5) as letting_go:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="database is locked") as raised:
                await store.insert_job(make_job("job-1"), {})
            assert time.monotonic() - started < 1.0 and not letting_go.is_set()  # the timeout ended it
            assert raised.value.http_status == 503
            assert await store.get_job("job-0") is not None  # reads go on meanwhile

            async def stored() -> bool:
                try:
                    await store.insert_job(make_job("job-1"), {})
                except StoreUnavailable:
                    return False
                return True

            await wait_until(stored, timeout_s=10, what="the write, once the lock is let go")
        assert sorted(job.id for job in await store.list_jobs(10)) == ["job-0", "job-1"]
    finally:
        await store.close()


async def test_the_wal_starts_over_between_bursts_of_jobs(store: Store, tmp_path: Path) -> None:
    """Unless checkpoints copy the WAL back and let the next write start it over, the WAL grows
    by every write (~60 KB a job). A burst of jobs after a pause must write over the WAL the
    bursts before it left, not grow it."""
    wal = tmp_path / "db.sqlite-wal"
    numbers = itertools.count()

    async def a_burst_leaves_the_wal_no_larger() -> bool:
        size_before = wal.stat().st_size
        for number in itertools.islice(numbers, 30):
            await store.latest_binary("app")  # the reads of a server go on meanwhile
            await store.insert_job(make_job(f"job-{number}"), {"input": {"n": number}})
            await store.finish_job(f"job-{number}", b"[1]")
            await asyncio.sleep(0)  # a server yields to the loop between requests
        return wal.stat().st_size <= size_before

    await wait_until(
        a_burst_leaves_the_wal_no_larger, timeout_s=5, what="a burst of jobs that does not grow the WAL"
    )
    assert wal.stat().st_size < 8 * 1024 * 1024
    written = next(numbers)
    assert len(await store.list_jobs(written + 1, JobState.FINISHED)) == written
