"""The embedded default store: one SQLite file plus a folder of content-addressed blob files.

Three connections, each with one user. The store's worker thread owns the main one: migrations,
binaries, contexts, retention and WAL checkpoints run there, each method handing a plain function
to that thread and awaiting it. Blob files are touched on the same thread, so a ``delete_binary``
removing an unused blob and an ``add_binary_version`` checking it cannot interleave. The event
loop owns the other two: a read-only one for lookups, and one for the job path's short writes
(insert, state changes, finish), which take tens of microseconds, less than the hop to the
thread and back. A loop write never waits: when another connection (the thread's, or another
process's) holds the write lock, or when it carries a large value, it goes to the thread like any
other write. SQLite's locks make each method's statements atomic with respect to every other
method, on whichever connection. Errors that mean the file cannot be got at (locked past the busy
timeout, unreadable, failing disk) are reported as StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from jobserver.common.records import (
    BinaryRecord,
    BinaryType,
    ContextRecord,
    ErrorMap,
    JobRecord,
    from_epoch_ms,
    to_epoch_ms,
    utc_now,
)
from jobserver.common.states import FINAL_JOB_STATES, ContextState, JobState, context_sources, job_sources
from jobserver.storage.base import Store
from jobserver.storage.blobs import BlobFolder
from jobserver.storage.rows import (
    BINARY_COLUMNS,
    CONTEXT_COLUMNS,
    JOB_COLUMNS,
    binary_from_row,
    column_list,
    context_from_row,
    context_values,
    job_from_row,
    job_values,
    json_value,
    to_json,
)
from jobserver.storage.sqlite import connection as sqlite_connection
from jobserver.storage.sqlite import retention as sqlite_retention
from jobserver.storage.sqlite.connection import DEFAULT_BUSY_TIMEOUT_S, outages_reported, transaction

_T = TypeVar("_T")

log = structlog.get_logger(__name__)

# Stay far below SQLITE_MAX_VARIABLE_NUMBER (999 on old builds).
_MAX_PARAMETERS = 500
_ACTIVE_JOB_STATES = tuple(state.value for state in JobState if state not in FINAL_JOB_STATES)

_BINARIES = column_list(BINARY_COLUMNS)
_CONTEXTS = column_list(CONTEXT_COLUMNS)
_JOBS = column_list(JOB_COLUMNS)
_LATEST_BINARY = (
    f"SELECT {_BINARIES} FROM binaries WHERE app_name = ? ORDER BY upload_time DESC, id DESC LIMIT 1"
)
_INSERT_JOB = f"INSERT INTO jobs ({_JOBS}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})"

# A write carrying more than this (a large result or config) goes to the worker thread: copying
# megabytes into the database must not hold the event loop up.
_LOOP_WRITE_MAX_BYTES = 256 * 1024
# The loop's writes leave the WAL to grow; the worker thread checkpoints it after this many (a job
# adds ~16 pages with its two writes; SQLite's own automatic checkpoint runs at 1000 pages). The
# checkpoint holds the write lock, so the loop's writes meanwhile queue on the thread behind it.
_CHECKPOINT_AFTER_WRITES = 100
_BUSY = object()


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class SqliteStore(Store):
    def __init__(self, path: str, *, blob_dir: Path, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        """``busy_timeout_s``: how long a write waits for a lock another connection (another
        process) holds before it fails with StoreUnavailable."""
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._blobs = BlobFolder(blob_dir)
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None  # the event loop's
        self._writes_since_checkpoint = 0
        self._checkpoint: asyncio.Future[None] | None = None

    # --- plumbing ----------------------------------------------------------------------------------

    async def _read(self, function: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a read on the event loop's own connection: in WAL mode a reader never waits for
        the writer, and a query of tens of microseconds is cheaper than a hop to the writer's
        thread and back (the request path makes several)."""
        if self._reader is None:
            raise RuntimeError("the store is not open")
        with outages_reported():
            return function(self._reader)

    async def _call(self, function: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._executor is None or self._connection is None:
            raise RuntimeError("the store is not open")
        loop = asyncio.get_running_loop()
        with outages_reported():
            return await loop.run_in_executor(self._executor, function, self._connection)

    async def _write(self, function: Callable[[sqlite3.Connection], _T], *, size_bytes: int = 0) -> _T:
        """Run a short write on the event loop's writing connection, or else on the worker thread.

        A job makes two writes on its way (insert, finish): on the loop they cost tens of
        microseconds, where the hop to the worker thread and back costs more than the write. The
        loop never waits for the write lock: if another connection holds it, the write queues on
        the worker thread, which waits as long as the busy timeout allows.
        """
        writer = self._writer
        if writer is not None and size_bytes <= _LOOP_WRITE_MAX_BYTES:
            result: Any
            with outages_reported():
                try:
                    result = function(writer)
                except sqlite3.OperationalError as error:
                    if not sqlite_connection.is_busy(error):
                        raise
                    if writer.in_transaction:  # BUSY comes at BEGIN; leave nothing open regardless
                        writer.execute("ROLLBACK")
                    result = _BUSY
            if result is not _BUSY:
                self._count_loop_write()
                return result
        return await self._call(function)

    def _count_loop_write(self) -> None:
        self._writes_since_checkpoint += 1
        if self._writes_since_checkpoint < _CHECKPOINT_AFTER_WRITES or self._checkpoint is not None:
            return
        if self._executor is None or self._connection is None:
            return
        self._writes_since_checkpoint = 0
        connection = self._connection
        checkpoint = asyncio.get_running_loop().run_in_executor(
            self._executor, sqlite_connection.checkpoint, connection
        )
        checkpoint.add_done_callback(self._checkpoint_done)
        self._checkpoint = checkpoint

    def _checkpoint_done(self, checkpoint: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not checkpoint.cancelled() and checkpoint.exception() is not None:
            # The next one will catch up; SQLite's WAL stays correct however long it grows.
            log.warning("sqlite_checkpoint_failed", error=str(checkpoint.exception()))

    def _connect(self) -> sqlite3.Connection:
        self._blobs.create()
        return sqlite_connection.connect(self._path, busy_timeout_s=self._busy_timeout_s)

    # --- life cycle --------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._executor is not None:
            raise RuntimeError("the store is already open")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            with outages_reported():
                connection = await loop.run_in_executor(executor, self._connect)
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

    # --- binaries ----------------------------------------------------------------------------------

    async def put_blob(self, sha256: str, source: Path) -> None:
        await self._call(lambda _: self._blobs.adopt(sha256, source))

    async def blob_file(self, sha256: str) -> Path:
        # A stat of a local file: cheaper inline than a hop to the database thread and back.
        return self._blobs.existing(sha256)

    async def add_binary_version(
        self,
        app_name: str,
        binary_type: BinaryType,
        sha256: str,
        size_bytes: int,
        upload_time: datetime.datetime,
    ) -> BinaryRecord:
        upload_ms = to_epoch_ms(upload_time)

        def insert(connection: sqlite3.Connection) -> BinaryRecord:
            if not self._blobs.has(sha256):
                raise KeyError(sha256)
            cursor = connection.execute(
                "INSERT INTO binaries (app_name, binary_type, upload_time, sha256, size_bytes)"
                " VALUES (?, ?, ?, ?, ?)",
                (app_name, binary_type.value, upload_ms, sha256, size_bytes),
            )
            assert cursor.lastrowid is not None
            return BinaryRecord(
                cursor.lastrowid, app_name, binary_type, from_epoch_ms(upload_ms), sha256, size_bytes
            )

        return await self._call(insert)

    async def latest_binaries(self) -> list[BinaryRecord]:
        sql = (
            f"SELECT {_BINARIES} FROM (SELECT {_BINARIES}, ROW_NUMBER() OVER"
            " (PARTITION BY app_name ORDER BY upload_time DESC, id DESC) AS newness FROM binaries)"
            " AS versions WHERE newness = 1 ORDER BY app_name"
        )
        rows = await self._read(lambda connection: connection.execute(sql).fetchall())
        return [binary_from_row(row) for row in rows]

    async def latest_binary(self, app_name: str) -> BinaryRecord | None:
        sql = _LATEST_BINARY
        row = await self._read(lambda connection: connection.execute(sql, (app_name,)).fetchone())
        return None if row is None else binary_from_row(row)

    async def get_binaries(self, binary_ids: Collection[int]) -> list[BinaryRecord]:
        wanted = list(dict.fromkeys(binary_ids))

        def select(connection: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = []
            for start in range(0, len(wanted), _MAX_PARAMETERS):
                chunk = wanted[start : start + _MAX_PARAMETERS]
                sql = f"SELECT {_BINARIES} FROM binaries WHERE id IN ({_marks(len(chunk))})"
                rows.extend(connection.execute(sql, chunk))
            return rows

        by_id = {record.id: record for record in map(binary_from_row, await self._read(select))}
        return [by_id[binary_id] for binary_id in wanted if binary_id in by_id]

    async def binary_users(self, app_name: str) -> list[str]:
        sql = (
            "SELECT DISTINCT jobs.id FROM binaries"
            " JOIN job_binaries ON job_binaries.binary_id = binaries.id"
            " JOIN jobs ON jobs.id = job_binaries.job_id"
            f" WHERE binaries.app_name = ? AND jobs.state IN ({_marks(len(_ACTIVE_JOB_STATES))})"
            " ORDER BY jobs.id"
        )
        params = (app_name, *_ACTIVE_JOB_STATES)
        rows = await self._read(lambda connection: connection.execute(sql, params).fetchall())
        return [row[0] for row in rows]

    async def delete_binary(self, app_name: str) -> bool:
        def delete(connection: sqlite3.Connection) -> bool:
            with transaction(connection):
                hashes = [
                    row[0]
                    for row in connection.execute(
                        "SELECT DISTINCT sha256 FROM binaries WHERE app_name = ?", (app_name,)
                    )
                ]
                connection.execute("DELETE FROM binaries WHERE app_name = ?", (app_name,))
                unused = [
                    sha256
                    for sha256 in hashes
                    if connection.execute(
                        "SELECT 1 FROM binaries WHERE sha256 = ? LIMIT 1", (sha256,)
                    ).fetchone()
                    is None
                ]
            self._blobs.discard(unused)
            return bool(hashes)

        return await self._call(delete)

    # --- contexts ----------------------------------------------------------------------------------

    async def insert_context(self, context: ContextRecord) -> None:
        params = context_values(context, to_json)
        sql = f"INSERT INTO contexts ({_CONTEXTS}) VALUES ({_marks(len(CONTEXT_COLUMNS))})"
        await self._call(lambda connection: connection.execute(sql, params))

    async def latest_context(self, name: str) -> ContextRecord | None:
        sql = f"SELECT {_CONTEXTS} FROM contexts WHERE name = ? ORDER BY start_time DESC, id DESC LIMIT 1"
        row = await self._read(lambda connection: connection.execute(sql, (name,)).fetchone())
        return None if row is None else context_from_row(row)

    async def list_contexts(
        self, states: Collection[ContextState] | None = None, *, owner: str | None = None
    ) -> list[ContextRecord]:
        conditions = ["1 = 1"]
        params: list[str] = []
        if states is not None:
            params.extend(ContextState(state).value for state in states)
            conditions.append(f"state IN ({_marks(len(params))})")
        if owner is not None:
            conditions.append("(owner = ? OR owner IS NULL)")
            params.append(owner)
        where = " AND ".join(conditions)
        sql = f"SELECT {_CONTEXTS} FROM contexts WHERE {where} ORDER BY start_time DESC, id DESC"
        rows = await self._read(lambda connection: connection.execute(sql, params).fetchall())
        return [context_from_row(row) for row in rows]

    async def update_context(
        self,
        context_id: str,
        target: ContextState,
        *,
        error: str | None = None,
        application_id: str | None = None,
        web_ui_url: str | None = None,
    ) -> ContextRecord | None:
        sources = tuple(state.value for state in context_sources(target))
        if not sources:
            return None
        end_ms = to_epoch_ms(utc_now()) if target.is_final else None
        sql = (
            "UPDATE contexts SET state = ?, end_time = COALESCE(?, end_time), error = COALESCE(?, error),"
            " application_id = COALESCE(?, application_id), web_ui_url = COALESCE(?, web_ui_url)"
            f" WHERE id = ? AND state IN ({_marks(len(sources))})"
        )
        params = (target.value, end_ms, error, application_id, web_ui_url, context_id, *sources)
        select = f"SELECT {_CONTEXTS} FROM contexts WHERE id = ?"

        def update(connection: sqlite3.Connection) -> Any:
            with transaction(connection):
                if connection.execute(sql, params).rowcount == 0:
                    return None
                return connection.execute(select, (context_id,)).fetchone()

        row = await self._call(update)
        return None if row is None else context_from_row(row)

    # --- jobs --------------------------------------------------------------------------------------

    async def insert_job(self, job: JobRecord, config: Mapping[str, Any]) -> None:
        job_params = job_values(job, to_json)
        binary_params = [(job.id, position, binary_id) for position, binary_id in enumerate(job.binary_ids)]
        config_json = to_json(config)

        def insert(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                connection.execute(_INSERT_JOB, job_params)
                connection.executemany(
                    "INSERT INTO job_binaries (job_id, position, binary_id) VALUES (?, ?, ?)", binary_params
                )
                connection.execute(
                    "INSERT INTO job_configs (job_id, config) VALUES (?, ?)", (job.id, config_json)
                )

        await self._write(insert, size_bytes=len(config_json))

    @staticmethod
    def _select_jobs(
        connection: sqlite3.Connection, where: str, params: Sequence[Any], limit: int = -1
    ) -> list[JobRecord]:
        # One query: the page of jobs joined with their class path entries, grouped back per job.
        sql = (
            f"SELECT {column_list(JOB_COLUMNS, 'page')}, job_binaries.binary_id FROM"
            f" (SELECT {_JOBS} FROM jobs WHERE {where} ORDER BY start_time DESC, id DESC LIMIT ?) AS page"
            " LEFT JOIN job_binaries ON job_binaries.job_id = page.id"
            " ORDER BY page.start_time DESC, page.id DESC, job_binaries.position"
        )
        rows = connection.execute(sql, (*params, limit)).fetchall()
        jobs = []
        for _, group in itertools.groupby(rows, key=lambda row: row[0]):
            job_rows = list(group)
            binary_ids = [row[-1] for row in job_rows if row[-1] is not None]
            jobs.append(job_from_row(job_rows[0][:-1], binary_ids))
        return jobs

    async def get_job(self, job_id: str) -> JobRecord | None:
        jobs = await self._read(lambda connection: self._select_jobs(connection, "id = ?", (job_id,)))
        return jobs[0] if jobs else None

    async def list_jobs(self, limit: int, state: JobState | None = None) -> list[JobRecord]:
        if limit <= 0:
            return []
        where, params = ("1 = 1", ()) if state is None else ("state = ?", (JobState(state).value,))
        return await self._read(lambda connection: self._select_jobs(connection, where, params, limit))

    async def jobs_in_context(
        self, context_id: str, states: Collection[JobState] | None = None
    ) -> list[JobRecord]:
        where = "context_id = ?"
        params: tuple[str, ...] = (context_id,)
        if states is not None:
            values = tuple(JobState(state).value for state in states)
            where += f" AND state IN ({_marks(len(values))})"
            params += values
        return await self._read(lambda connection: self._select_jobs(connection, where, params))

    async def update_job(
        self, job_id: str, target: JobState, *, error: ErrorMap | None = None
    ) -> JobRecord | None:
        sources = tuple(state.value for state in job_sources(target))
        if not sources:
            return None
        end_ms = to_epoch_ms(utc_now()) if target.is_final else None
        sql = (
            "UPDATE jobs SET state = ?, end_time = COALESCE(?, end_time), error = COALESCE(?, error)"
            f" WHERE id = ? AND state IN ({_marks(len(sources))})"
        )
        params = (target.value, end_ms, None if error is None else to_json(error), job_id, *sources)

        def update(connection: sqlite3.Connection) -> JobRecord | None:
            with transaction(connection):
                if connection.execute(sql, params).rowcount == 0:
                    return None
                return self._select_jobs(connection, "id = ?", (job_id,))[0]

        return await self._write(update)

    async def get_job_config(self, job_id: str) -> Mapping[str, Any] | None:
        sql = "SELECT config FROM job_configs WHERE job_id = ?"
        row = await self._read(lambda connection: connection.execute(sql, (job_id,)).fetchone())
        return None if row is None else json_value(row[0])

    async def finish_job(
        self, job_id: str, result_json: bytes, *, end_time: datetime.datetime | None = None
    ) -> JobRecord | None:
        sources = tuple(state.value for state in job_sources(JobState.FINISHED))
        # RETURNING gives the updated row back: no second read of the job (a third of the cost).
        update = (
            f"UPDATE jobs SET state = ?, end_time = ? WHERE id = ? AND state IN ({_marks(len(sources))})"
            f" RETURNING {_JOBS}"
        )
        save = (
            "INSERT INTO job_results (job_id, result) VALUES (?, ?)"
            " ON CONFLICT (job_id) DO UPDATE SET result = excluded.result"
        )
        binaries = "SELECT binary_id FROM job_binaries WHERE job_id = ? ORDER BY position"
        params = (JobState.FINISHED.value, to_epoch_ms(end_time or utc_now()), job_id, *sources)

        def finish(connection: sqlite3.Connection) -> JobRecord | None:
            with transaction(connection):
                rows = connection.execute(update, params).fetchall()
                if not rows:
                    return None
                connection.execute(save, (job_id, bytes(result_json)))
                binary_ids = [binary_id for (binary_id,) in connection.execute(binaries, (job_id,))]
            return job_from_row(rows[0], binary_ids)

        return await self._write(finish, size_bytes=len(result_json))

    async def get_result(self, job_id: str) -> bytes | None:
        sql = "SELECT result FROM job_results WHERE job_id = ?"
        row = await self._read(lambda connection: connection.execute(sql, (job_id,)).fetchone())
        return None if row is None else bytes(row[0])

    # --- retention ---------------------------------------------------------------------------------

    async def delete_expired(self, before: datetime.datetime) -> dict[str, int]:
        before_ms = to_epoch_ms(before)
        jobs = 0
        while True:  # one batch per hop, so other writes interleave with a long clean-up
            deleted = await self._call(
                lambda connection: sqlite_retention.delete_expired_jobs_batch(connection, before_ms)
            )
            jobs += deleted
            if deleted < sqlite_retention.JOB_BATCH_SIZE:
                break
        counts = await self._call(
            lambda connection: sqlite_retention.delete_expired(connection, self._blobs, before_ms)
        )
        return {**counts, "jobs": jobs}
