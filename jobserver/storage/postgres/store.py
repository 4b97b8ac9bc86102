"""The production store: PostgreSQL through psycopg 3 (async) and a connection pool.

Blobs live in the database, in chunks of CHUNK_BYTES, so a large binary is never whole in memory
and every server of an HA pair sees the same bytes; ``blob_file`` exports a blob once into a local
cache folder and hands out that file. Connections are in autocommit mode: single statements need
no BEGIN/COMMIT round trips, and the few multi-statement changes open a transaction explicitly.
Every database access goes through ``_connection``, which reports outages as StoreUnavailable
(connection.py).

Past 400 lines on purpose: this is the one class that implements the Store contract for
PostgreSQL, one short method per contract method, each holding its SQL; what takes more than a
statement or two already lives beside it (``blobs.py``, ``callbacks.py``, ``connection.py``,
``servers.py``, and schedules and workflows in ``scheduling.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import os
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Json

from jobserver.common import metrics
from jobserver.common.errors import BadRequest
from jobserver.common.records import (
    BinaryRecord,
    BinaryType,
    ContextRecord,
    ErrorMap,
    JobRecord,
    PendingCallback,
    ServerRecord,
    from_epoch_ms,
    to_epoch_ms,
    utc_now,
)
from jobserver.common.states import (
    CALLBACK_JOB_STATES,
    FINAL_JOB_STATES,
    ContextState,
    JobState,
    context_sources,
    job_sources,
)
from jobserver.storage.base import BLOB_GRACE_PERIOD_S, Store
from jobserver.storage.blobs import BlobFolder, check_sha256
from jobserver.storage.postgres import callbacks, results, servers
from jobserver.storage.postgres.blobs import delete_unused_blobs, export_blob, store_blob
from jobserver.storage.postgres.callbacks import queuing_callback
from jobserver.storage.postgres.connection import (
    POOL_OPEN_TIMEOUT_S,
    Connection,
    Pool,
    Row,
    create_pool,
    migrate,
    outages_reported,
    split_pool_settings,
)
from jobserver.storage.postgres.scheduling import PostgresScheduling
from jobserver.storage.results import FileResult, Result
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

_ACTIVE_JOB_STATES = [state.value for state in JobState if state not in FINAL_JOB_STATES]
_FINAL_JOB_STATES = [state.value for state in FINAL_JOB_STATES]
_FINAL_CONTEXT_STATES = [state.value for state in ContextState if state.is_final]

_BINARIES = column_list(BINARY_COLUMNS)
_CONTEXTS = column_list(CONTEXT_COLUMNS)
# A job row followed by its class path entries, in order.
_JOBS = column_list(JOB_COLUMNS, "jobs") + (
    ", ARRAY(SELECT binary_id FROM job_binaries WHERE job_binaries.job_id = jobs.id ORDER BY position)"
)
_SAVE_RESULT = (
    "INSERT INTO job_results (job_id, result) VALUES (%s, %s)"
    " ON CONFLICT (job_id) DO UPDATE SET result = EXCLUDED.result, chunk_count = 0, size_bytes = 0"
)
_INSERT_JOB = (
    f"WITH job AS (INSERT INTO jobs ({column_list(JOB_COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * len(JOB_COLUMNS))}) RETURNING id),"
    " class_path AS (INSERT INTO job_binaries (job_id, position, binary_id)"
    " SELECT job.id, entry.position - 1, entry.binary_id"
    " FROM job, unnest(%s::bigint[]) WITH ORDINALITY AS entry (binary_id, position))"
    " INSERT INTO job_configs (job_id, config) SELECT job.id, %s FROM job"
)


def _json(value: Any) -> Json:
    return Json(value, dumps=to_json)


class PostgresStore(PostgresScheduling, Store):
    def __init__(self, url: str, *, blob_dir: Path) -> None:
        self._pool_settings = split_pool_settings(url)
        self._cache = BlobFolder(blob_dir)
        self._pool: Pool | None = None

    # --- plumbing ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        with metrics.store_operation("postgres", "query"), outages_reported():
            async with self._pool.connection() as connection:
                yield connection

    async def _fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        async with self._connection() as connection:
            return await (await connection.execute(sql, params)).fetchone()

    async def _fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        async with self._connection() as connection:
            return await (await connection.execute(sql, params)).fetchall()

    # --- life cycle --------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            raise RuntimeError("the store is already open")
        await asyncio.to_thread(self._cache.create)
        pool = create_pool(self._pool_settings)
        try:
            with outages_reported():
                await pool.open(wait=True, timeout=POOL_OPEN_TIMEOUT_S)
                await migrate(pool)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # --- binaries ----------------------------------------------------------------------------------

    async def put_blob(self, sha256: str, source: Path) -> None:
        check_sha256(sha256)
        async with self._connection() as connection, connection.transaction():
            await store_blob(connection, sha256, source)
        await asyncio.to_thread(source.unlink, missing_ok=True)

    async def blob_file(self, sha256: str) -> Path:
        try:
            path = self._cache.path_of(sha256)
        except ValueError as error:
            raise KeyError(sha256) from error
        # Ask the database even when the file is cached: another server may have deleted the blob.
        if await self._fetchone("SELECT 1 FROM blobs WHERE sha256 = %s", (sha256,)) is None:
            await asyncio.to_thread(self._cache.discard, [sha256])
            raise KeyError(sha256)
        if not await asyncio.to_thread(path.is_file):
            partial = self._cache.partial_path(sha256)
            async with self._connection() as connection:
                await export_blob(connection, sha256, partial)
            await asyncio.to_thread(os.replace, partial, path)
        return path

    async def add_binary_version(
        self,
        app_name: str,
        binary_type: BinaryType,
        sha256: str,
        size_bytes: int,
        upload_time: datetime.datetime,
    ) -> BinaryRecord:
        upload_ms = to_epoch_ms(upload_time)
        try:
            row = await self._fetchone(
                "INSERT INTO binaries (app_name, binary_type, upload_time, sha256, size_bytes)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (app_name, binary_type.value, upload_ms, sha256, size_bytes),
            )
        except psycopg.errors.ForeignKeyViolation as error:
            raise KeyError(sha256) from error
        assert row is not None
        return BinaryRecord(row[0], app_name, binary_type, from_epoch_ms(upload_ms), sha256, size_bytes)

    async def latest_binaries(self) -> list[BinaryRecord]:
        rows = await self._fetchall(
            f"SELECT {_BINARIES} FROM (SELECT {_BINARIES}, ROW_NUMBER() OVER"
            " (PARTITION BY app_name ORDER BY upload_time DESC, id DESC) AS newness FROM binaries)"
            " AS versions WHERE newness = 1 ORDER BY app_name"
        )
        return [binary_from_row(row) for row in rows]

    async def latest_binary(self, app_name: str) -> BinaryRecord | None:
        row = await self._fetchone(
            f"SELECT {_BINARIES} FROM binaries WHERE app_name = %s"
            " ORDER BY upload_time DESC, id DESC LIMIT 1",
            (app_name,),
        )
        return None if row is None else binary_from_row(row)

    async def get_binaries(self, binary_ids: Collection[int]) -> list[BinaryRecord]:
        wanted = list(dict.fromkeys(binary_ids))
        if not wanted:
            return []
        sql = f"SELECT {_BINARIES} FROM binaries WHERE id = ANY(%s::bigint[])"
        rows = await self._fetchall(sql, (wanted,))
        by_id = {record.id: record for record in map(binary_from_row, rows)}
        return [by_id[binary_id] for binary_id in wanted if binary_id in by_id]

    async def binary_users(self, app_name: str) -> list[str]:
        rows = await self._fetchall(
            "SELECT DISTINCT jobs.id FROM binaries"
            " JOIN job_binaries ON job_binaries.binary_id = binaries.id"
            " JOIN jobs ON jobs.id = job_binaries.job_id"
            " WHERE binaries.app_name = %s AND jobs.state = ANY(%s) ORDER BY jobs.id",
            (app_name, _ACTIVE_JOB_STATES),
        )
        return [row[0] for row in rows]

    async def delete_binary(self, app_name: str) -> bool:
        async with self._connection() as connection, connection.transaction():
            cursor = await connection.execute(
                "DELETE FROM binaries WHERE app_name = %s RETURNING sha256", (app_name,)
            )
            hashes = sorted({row[0] for row in await cursor.fetchall()})
            if not hashes:
                return False
            cursor = await connection.execute(
                "DELETE FROM blobs WHERE sha256 = ANY(%s) AND NOT EXISTS"
                " (SELECT 1 FROM binaries WHERE binaries.sha256 = blobs.sha256) RETURNING sha256",
                (hashes,),
            )
            unused = [row[0] for row in await cursor.fetchall()]
        await asyncio.to_thread(self._cache.discard, unused)
        return True

    # --- contexts ----------------------------------------------------------------------------------

    async def insert_context(self, context: ContextRecord) -> None:
        marks = ", ".join(["%s"] * len(CONTEXT_COLUMNS))
        try:
            async with self._connection() as connection:
                await connection.execute(
                    f"INSERT INTO contexts ({_CONTEXTS}) VALUES ({marks})", context_values(context, _json)
                )
        except psycopg.errors.UniqueViolation as error:  # contexts_active_name: another server was first
            raise BadRequest(f"context {context.name} exists") from error

    async def latest_context(self, name: str) -> ContextRecord | None:
        row = await self._fetchone(
            f"SELECT {_CONTEXTS} FROM contexts WHERE name = %s ORDER BY start_time DESC, id DESC LIMIT 1",
            (name,),
        )
        return None if row is None else context_from_row(row)

    async def list_contexts(
        self, states: Collection[ContextState] | None = None, *, owner: str | None = None
    ) -> list[ContextRecord]:
        conditions = ["TRUE"]
        params: list[Any] = []
        if states is not None:
            conditions.append("state = ANY(%s)")
            params.append([ContextState(state).value for state in states])
        if owner is not None:
            conditions.append("(owner = %s OR owner IS NULL)")
            params.append(owner)
        rows = await self._fetchall(
            f"SELECT {_CONTEXTS} FROM contexts WHERE {' AND '.join(conditions)}"
            " ORDER BY start_time DESC, id DESC",
            tuple(params),
        )
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
        sources = [state.value for state in context_sources(target)]
        if not sources:
            return None
        end_ms = to_epoch_ms(utc_now()) if target.is_final else None
        row = await self._fetchone(
            "UPDATE contexts SET state = %s, end_time = COALESCE(%s, end_time), error = COALESCE(%s, error),"
            " application_id = COALESCE(%s, application_id), web_ui_url = COALESCE(%s, web_ui_url)"
            f" WHERE id = %s AND state = ANY(%s) RETURNING {_CONTEXTS}",
            (target.value, end_ms, error, application_id, web_ui_url, context_id, sources),
        )
        return None if row is None else context_from_row(row)

    # --- jobs --------------------------------------------------------------------------------------

    async def insert_job(self, job: JobRecord, config: Mapping[str, Any]) -> None:
        # One statement: atomic in autocommit mode, and one round trip on the hot path.
        params = (*job_values(job, _json), list(job.binary_ids), _json(config))
        async with self._connection() as connection:
            await connection.execute(_INSERT_JOB, params)

    @staticmethod
    def _job(row: Row) -> JobRecord:
        return job_from_row(row[:-1], row[-1])

    async def get_job(self, job_id: str) -> JobRecord | None:
        row = await self._fetchone(f"SELECT {_JOBS} FROM jobs WHERE id = %s", (job_id,))
        return None if row is None else self._job(row)

    async def list_jobs(self, limit: int, state: JobState | None = None) -> list[JobRecord]:
        if limit <= 0:
            return []
        where, params = ("", ()) if state is None else (" WHERE state = %s", (JobState(state).value,))
        rows = await self._fetchall(
            f"SELECT {_JOBS} FROM jobs{where} ORDER BY start_time DESC, id DESC LIMIT %s", (*params, limit)
        )
        return [self._job(row) for row in rows]

    async def jobs_in_context(
        self, context_id: str, states: Collection[JobState] | None = None
    ) -> list[JobRecord]:
        where = "context_id = %s"
        params: tuple[Any, ...] = (context_id,)
        if states is not None:
            where, params = where + " AND state = ANY(%s)", (*params, [JobState(s).value for s in states])
        rows = await self._fetchall(
            f"SELECT {_JOBS} FROM jobs WHERE {where} ORDER BY start_time DESC, id DESC", params
        )
        return [self._job(row) for row in rows]

    async def update_job(
        self, job_id: str, target: JobState, *, error: ErrorMap | None = None
    ) -> JobRecord | None:
        sources = [state.value for state in job_sources(target)]
        if not sources:
            return None
        end_ms = to_epoch_ms(utc_now()) if target.is_final else None
        sql = (
            "UPDATE jobs SET state = %s, end_time = COALESCE(%s, end_time), error = COALESCE(%s, error)"
            f" WHERE id = %s AND state = ANY(%s) RETURNING {_JOBS}"
        )
        row = await self._fetchone(
            queuing_callback(sql) if target in CALLBACK_JOB_STATES else sql,
            (target.value, end_ms, None if error is None else _json(error), job_id, sources),
        )
        return None if row is None else self._job(row)

    async def get_job_config(self, job_id: str) -> Mapping[str, Any] | None:
        row = await self._fetchone("SELECT config FROM job_configs WHERE job_id = %s", (job_id,))
        return None if row is None else json_value(row[0])

    async def finish_job(
        self, job_id: str, result_json: bytes | FileResult, *, end_time: datetime.datetime | None = None
    ) -> JobRecord | None:
        sources = [state.value for state in job_sources(JobState.FINISHED)]
        async with self._connection() as connection, connection.transaction():
            cursor = await connection.execute(
                queuing_callback(
                    "UPDATE jobs SET state = %s, end_time = %s WHERE id = %s AND state = ANY(%s)"
                    f" RETURNING {_JOBS}"
                ),
                (JobState.FINISHED.value, to_epoch_ms(end_time or utc_now()), job_id, sources),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            if isinstance(result_json, FileResult):
                await results.store_chunks(connection, job_id, result_json)
            else:
                await connection.execute(_SAVE_RESULT, (job_id, bytes(result_json)))
        return self._job(row)

    async def get_result(self, job_id: str) -> Result | None:
        row = await self._fetchone(
            "SELECT result, chunk_count, size_bytes FROM job_results WHERE job_id = %s", (job_id,)
        )
        if row is None:
            return None
        if row[1]:
            return results.ChunkRowsResult(row[2], row[1], functools.partial(self._result_chunk, job_id))
        return bytes(row[0])

    async def _result_chunk(self, job_id: str, seq: int) -> bytes | None:
        row = await self._fetchone(
            "SELECT data FROM job_result_chunks WHERE job_id = %s AND seq = %s", (job_id, seq)
        )
        return None if row is None else bytes(row[0])

    # --- pending callbacks -------------------------------------------------------------------------

    # --- job logs

    async def append_job_log(self, job_id: str, first_line: int, lines: Sequence[str]) -> None:
        async with self._connection() as connection, connection.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO job_logs (job_id, line_no, line) VALUES (%s, %s, %s)"
                " ON CONFLICT (job_id, line_no) DO NOTHING",
                [(job_id, first_line + offset, line) for offset, line in enumerate(lines)],
            )

    async def job_log(self, job_id: str, start: int, size: int) -> tuple[int, list[str]]:
        # Line numbers have no gaps: the last one tells how many there are, through the primary key.
        row = await self._fetchone("SELECT MAX(line_no) FROM job_logs WHERE job_id = %s", (job_id,))
        total = 0 if row is None or row[0] is None else int(row[0]) + 1
        if size <= 0 or start >= total:
            return total, []
        rows = await self._fetchall(
            "SELECT line FROM job_logs WHERE job_id = %s AND line_no >= %s ORDER BY line_no LIMIT %s",
            (job_id, start, size),
        )
        return total, [str(row[0]) for row in rows]

    async def claim_callbacks(
        self, owner: str, *, lease_s: float, job_id: str | None = None, own: bool = False
    ) -> list[PendingCallback]:
        now_ms, lease_ms = to_epoch_ms(utc_now()), round(lease_s * 1000)
        async with self._connection() as connection:
            return await callbacks.claim_callbacks(
                connection, owner, now_ms=now_ms, lease_ms=lease_ms, job_id=job_id, own=own
            )

    async def reschedule_callback(
        self, job_id: str, owner: str, *, attempts: int, next_attempt_time: datetime.datetime, lease_s: float
    ) -> bool:
        next_ms, lease_ms = to_epoch_ms(next_attempt_time), round(lease_s * 1000)
        async with self._connection() as connection:
            return await callbacks.reschedule_callback(
                connection, job_id, owner, attempts=attempts, next_ms=next_ms, lease_ms=lease_ms
            )

    async def remove_callback(self, job_id: str) -> None:
        async with self._connection() as connection:
            await callbacks.remove_callback(connection, job_id)

    async def release_callbacks(self, owner: str) -> int:
        async with self._connection() as connection:
            return await callbacks.release_callbacks(connection, owner)

    async def list_callbacks(self) -> list[PendingCallback]:
        async with self._connection() as connection:
            return await callbacks.list_callbacks(connection)

    # --- servers sharing the store --------------------------------------------------------------------

    async def beat(self, server: ServerRecord) -> str | None:
        async with self._connection() as connection, connection.transaction():
            return await servers.beat(connection, server)

    async def list_servers(self) -> list[ServerRecord]:
        async with self._connection() as connection:
            return await servers.list_servers(connection)

    async def remove_server(self, server_id: str) -> None:
        async with self._connection() as connection:
            await servers.remove_server(connection, server_id)

    async def adopt_contexts(
        self, dead_server_id: str, adopter_id: str, *, silent_since: datetime.datetime
    ) -> list[ContextRecord]:
        async with self._connection() as connection:
            return await servers.adopt_contexts(
                connection, dead_server_id, adopter_id, to_epoch_ms(silent_since)
            )

    # --- retention ---------------------------------------------------------------------------------

    async def delete_expired(self, before: datetime.datetime) -> dict[str, int]:
        # Each statement is its own transaction (autocommit); the foreign keys' ON DELETE CASCADE
        # takes a job's config, result and class path entries, and a blob's chunks, with it.
        before_ms = to_epoch_ms(before)
        async with self._connection() as connection:
            jobs = await connection.execute(
                "DELETE FROM jobs WHERE state = ANY(%s) AND end_time < %s", (_FINAL_JOB_STATES, before_ms)
            )
            contexts = await connection.execute(
                "DELETE FROM contexts WHERE state = ANY(%s) AND end_time < %s",
                (_FINAL_CONTEXT_STATES, before_ms),
            )
            unused = await delete_unused_blobs(connection, grace_s=BLOB_GRACE_PERIOD_S)
        await asyncio.to_thread(self._cache.discard, unused)
        return {"jobs": max(jobs.rowcount, 0), "contexts": max(contexts.rowcount, 0), "blobs": len(unused)}
