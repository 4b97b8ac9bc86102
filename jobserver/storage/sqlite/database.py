"""The SQLite file as the store uses it: three connections, each with one user, and the store's
worker thread.

The worker thread owns the main connection: migrations, binaries, contexts, retention and WAL
checkpoints run there (``in_worker``), each handing a plain function to that thread and awaiting
it. The store touches blob files on the same thread, so a ``delete_binary`` removing an unused
blob and an ``add_binary_version`` checking it cannot interleave. The event loop owns the other
two: a read-only one for lookups (``read``), and one for the job path's short writes (``write``:
insert, state changes, finish), which take tens of microseconds, less than the hop to the thread
and back. A loop write never waits: when another connection (the thread's, or another process's)
holds the write lock, or when it carries a large value, it goes to the thread like any other
write. SQLite's locks make each function's statements atomic with respect to every other, on
whichever connection. Errors that mean the file cannot be got at (locked past the busy timeout,
unreadable, failing disk) are reported as StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import structlog

from jobserver.common import metrics
from jobserver.storage.sqlite import connection as sqlite_connection
from jobserver.storage.sqlite.connection import is_busy, outages_reported

_T = TypeVar("_T")

log = structlog.get_logger(__name__)

# A write carrying more than this (a large result or config) goes to the worker thread: copying
# megabytes into the database must not hold the event loop up.
LOOP_WRITE_MAX_BYTES = 256 * 1024
# The loop's writes leave the WAL to grow; the worker thread checkpoints it after this many (a job
# adds ~16 pages with its two writes; SQLite's own automatic checkpoint runs at 1000 pages). The
# checkpoint holds the write lock, so the loop's writes meanwhile queue on the thread behind it.
CHECKPOINT_AFTER_WRITES = 100


class Database:
    def __init__(self, path: str, *, busy_timeout_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None  # the worker thread's
        self._reader: sqlite3.Connection | None = None  # the event loop's
        self._writer: sqlite3.Connection | None = None  # the event loop's
        self._writes_since_checkpoint = 0
        self._checkpoint: asyncio.Future[None] | None = None

    async def open(self) -> None:
        """Open (creating and migrating) the file on the worker thread, then the loop's two
        connections to it."""
        if self._executor is not None:
            raise RuntimeError("the store is already open")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            with outages_reported():
                connection = await loop.run_in_executor(
                    executor,
                    lambda: sqlite_connection.connect(self._path, busy_timeout_s=self._busy_timeout_s),
                )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor, self._connection = executor, connection
        self._reader = sqlite_connection.connect_reader(self._path, busy_timeout_s=self._busy_timeout_s)
        self._writer = sqlite_connection.connect_loop_writer(self._path)

    async def close(self) -> None:
        executor, connection = self._executor, self._connection
        if executor is None or connection is None:
            return
        self._executor = self._connection = None
        for loop_connection in (self._reader, self._writer):
            if loop_connection is not None:
                loop_connection.close()
        self._reader = self._writer = None
        await asyncio.get_running_loop().run_in_executor(executor, sqlite_connection.close, connection)
        executor.shutdown(wait=True)

    async def read(self, function: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a read on the event loop's own connection: in WAL mode a reader never waits for
        the writer, and a query of tens of microseconds is cheaper than a hop to the worker
        thread and back (the request path makes several)."""
        if self._reader is None:
            raise RuntimeError("the store is not open")
        with metrics.store_operation("sqlite", "read"), outages_reported():
            return function(self._reader)

    def others_commits(self) -> int:
        """A number that changes whenever a connection other than the loop's writer (the worker
        thread's, or another process's) commits: ``PRAGMA data_version``, read on that writer."""
        if self._writer is None:
            raise RuntimeError("the store is not open")
        with outages_reported():
            return int(self._writer.execute("PRAGMA data_version").fetchone()[0])

    async def in_worker(self, function: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``function`` on the worker thread's connection, which waits for a lock held
        elsewhere as long as the busy timeout allows."""
        if self._executor is None or self._connection is None:
            raise RuntimeError("the store is not open")
        loop = asyncio.get_running_loop()
        with metrics.store_operation("sqlite", "worker"), outages_reported():
            return await loop.run_in_executor(self._executor, function, self._connection)

    async def write(self, function: Callable[[sqlite3.Connection], _T], *, size_bytes: int = 0) -> _T:
        """Run a short write on the event loop's writing connection, or else on the worker thread.

        A job makes two writes on its way (insert, finish): on the loop they cost tens of
        microseconds, where the hop to the worker thread and back costs more than the write. The
        loop never waits for the write lock: if another connection holds it, the write queues on
        the worker thread, which waits as long as the busy timeout allows.
        """
        writer = self._writer
        if writer is not None and size_bytes <= LOOP_WRITE_MAX_BYTES:
            with metrics.store_operation("sqlite", "write"), outages_reported():
                try:
                    result = function(writer)
                except sqlite3.OperationalError as error:
                    if not is_busy(error):
                        raise
                    if writer.in_transaction:  # BUSY comes at BEGIN; leave nothing open regardless
                        writer.execute("ROLLBACK")
                else:
                    self._count_loop_write()
                    return result
        return await self.in_worker(function)

    def _count_loop_write(self) -> None:
        self._writes_since_checkpoint += 1
        if self._writes_since_checkpoint < CHECKPOINT_AFTER_WRITES or self._checkpoint is not None:
            return
        if self._executor is None or self._connection is None:
            return
        self._writes_since_checkpoint = 0
        checkpoint = asyncio.get_running_loop().run_in_executor(
            self._executor, sqlite_connection.checkpoint, self._connection
        )
        checkpoint.add_done_callback(self._checkpoint_done)
        self._checkpoint = checkpoint

    def _checkpoint_done(self, checkpoint: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not checkpoint.cancelled() and checkpoint.exception() is not None:
            # The next one will catch up; SQLite's WAL stays correct however long it grows.
            log.warning("sqlite_checkpoint_failed", error=str(checkpoint.exception()))
