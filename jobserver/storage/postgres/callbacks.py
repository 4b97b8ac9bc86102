"""The SQL of pending callbacks for the PostgreSQL store: functions of a connection (autocommit, so
each statement is its own transaction). The callback of a job that ends is queued by the statement
that stores the end (``queuing_callback``)."""

from __future__ import annotations

from typing import Any

from jobserver.common.records import PendingCallback
from jobserver.storage.postgres.connection import Connection
from jobserver.storage.rows import PENDING_CALLBACK_COLUMNS, column_list, pending_callback_from_row

_CALLBACKS = column_list(PENDING_CALLBACK_COLUMNS)


def queuing_callback(update_job: str) -> str:
    """``update_job`` (an UPDATE of one job to FINISHED or ERROR, RETURNING the job's columns) that
    also queues the job's callback when it has a callback_url, in the same statement."""
    return (
        f"WITH job AS ({update_job}),"
        " queued AS (INSERT INTO pending_callbacks (job_id, url, next_attempt_time)"
        " SELECT id, callback_url, end_time FROM job WHERE callback_url IS NOT NULL"
        " ON CONFLICT (job_id) DO NOTHING)"
        " SELECT * FROM job"
    )


async def claim_callbacks(
    connection: Connection, owner: str, *, now_ms: int, lease_ms: int, job_id: str | None, own: bool
) -> list[PendingCallback]:
    """base.Store.claim_callbacks. One UPDATE: under READ COMMITTED a server that finds a row
    another has just claimed re-checks the WHERE against the new lease and skips it."""
    # A callback nobody holds has lease_until 0: "free" is one range of the lease index.
    conditions = ["(lease_until < %s OR owner = %s)" if own else "lease_until < %s"]
    params: list[Any] = [now_ms, owner] if own else [now_ms]
    if job_id is not None:
        conditions.append("job_id = %s")
        params.append(job_id)
    cursor = await connection.execute(
        "UPDATE pending_callbacks SET owner = %s, lease_until = GREATEST(next_attempt_time, %s) + %s"
        f" WHERE {' AND '.join(conditions)} RETURNING {_CALLBACKS}",
        (owner, now_ms, lease_ms, *params),
    )
    claimed = [pending_callback_from_row(row) for row in await cursor.fetchall()]
    return sorted(claimed, key=lambda pending: (pending.next_attempt_time, pending.job_id))


async def reschedule_callback(
    connection: Connection, job_id: str, owner: str, *, attempts: int, next_ms: int, lease_ms: int
) -> bool:
    cursor = await connection.execute(
        "UPDATE pending_callbacks SET attempts = %s, next_attempt_time = %s, lease_until = %s"
        " WHERE job_id = %s AND owner = %s",
        (attempts, next_ms, next_ms + lease_ms, job_id, owner),
    )
    return cursor.rowcount > 0


async def remove_callback(connection: Connection, job_id: str) -> None:
    await connection.execute("DELETE FROM pending_callbacks WHERE job_id = %s", (job_id,))


async def release_callbacks(connection: Connection, owner: str) -> int:
    cursor = await connection.execute(
        "UPDATE pending_callbacks SET owner = NULL, lease_until = 0 WHERE owner = %s", (owner,)
    )
    return max(cursor.rowcount, 0)


async def list_callbacks(connection: Connection) -> list[PendingCallback]:
    cursor = await connection.execute(
        f"SELECT {_CALLBACKS} FROM pending_callbacks ORDER BY next_attempt_time, job_id"
    )
    return [pending_callback_from_row(row) for row in await cursor.fetchall()]
