"""The SQL of pending callbacks for the SQLite store: functions of a connection, run where
database.py says. ``queue_callback`` runs inside the transaction that stores a job's end."""

from __future__ import annotations

import sqlite3

from jobserver.common.records import JobRecord, PendingCallback
from jobserver.common.states import CALLBACK_JOB_STATES
from jobserver.storage.rows import PENDING_CALLBACK_COLUMNS, column_list, pending_callback_from_row

_CALLBACKS = column_list(PENDING_CALLBACK_COLUMNS)


def queue_callback(connection: sqlite3.Connection, job: JobRecord, now_ms: int) -> None:
    """Queue the callback of ``job``, which has just ended, if it gets one (nobody holds it yet)."""
    if job.callback_url and job.state in CALLBACK_JOB_STATES:
        connection.execute(
            "INSERT INTO pending_callbacks (job_id, url, next_attempt_time) VALUES (?, ?, ?)"
            " ON CONFLICT (job_id) DO NOTHING",
            (job.id, job.callback_url, now_ms),
        )


def claim_callbacks(
    connection: sqlite3.Connection,
    owner: str,
    *,
    now_ms: int,
    lease_ms: int,
    job_id: str | None,
    own: bool,
) -> list[PendingCallback]:
    """base.Store.claim_callbacks: one statement, so SQLite's write lock makes it atomic."""
    # A callback nobody holds has lease_until 0: "free" is one range of the lease index.
    conditions = ["(lease_until < ? OR owner = ?)" if own else "lease_until < ?"]
    params: list[int | str] = [now_ms, owner] if own else [now_ms]
    if job_id is not None:
        conditions.append("job_id = ?")
        params.append(job_id)
    rows = connection.execute(
        "UPDATE pending_callbacks SET owner = ?, lease_until = MAX(next_attempt_time, ?) + ?"
        f" WHERE {' AND '.join(conditions)} RETURNING {_CALLBACKS}",
        (owner, now_ms, lease_ms, *params),
    ).fetchall()
    claimed = [pending_callback_from_row(row) for row in rows]
    return sorted(claimed, key=lambda pending: (pending.next_attempt_time, pending.job_id))


def reschedule_callback(
    connection: sqlite3.Connection, job_id: str, owner: str, *, attempts: int, next_ms: int, lease_ms: int
) -> bool:
    updated = connection.execute(
        "UPDATE pending_callbacks SET attempts = ?, next_attempt_time = ?, lease_until = ?"
        " WHERE job_id = ? AND owner = ?",
        (attempts, next_ms, next_ms + lease_ms, job_id, owner),
    )
    return updated.rowcount > 0


def remove_callback(connection: sqlite3.Connection, job_id: str) -> None:
    connection.execute("DELETE FROM pending_callbacks WHERE job_id = ?", (job_id,))


def release_callbacks(connection: sqlite3.Connection, owner: str) -> int:
    released = connection.execute(
        "UPDATE pending_callbacks SET owner = NULL, lease_until = 0 WHERE owner = ?", (owner,)
    )
    return released.rowcount


def list_callbacks(connection: sqlite3.Connection) -> list[PendingCallback]:
    rows = connection.execute(
        f"SELECT {_CALLBACKS} FROM pending_callbacks ORDER BY next_attempt_time, job_id"
    ).fetchall()
    return [pending_callback_from_row(row) for row in rows]
