"""The SQL of jobs, their configs and results for the SQLite store: functions of a connection, run
where database.py says."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from jobserver.common.records import ErrorMap, JobRecord, to_epoch_ms, utc_now
from jobserver.common.states import JobState, job_sources
from jobserver.storage.rows import JOB_COLUMNS, column_list, job_from_row, job_values, json_value, to_json
from jobserver.storage.sqlite.callbacks import queue_callback
from jobserver.storage.sqlite.connection import placeholders, transaction

_JOBS = column_list(JOB_COLUMNS)
_INSERT_JOB = f"INSERT INTO jobs ({_JOBS}) VALUES ({placeholders(len(JOB_COLUMNS))})"
_SAVE_RESULT = (
    "INSERT INTO job_results (job_id, result, result_file) VALUES (?, ?, ?)"
    " ON CONFLICT (job_id) DO UPDATE SET result = excluded.result, result_file = excluded.result_file"
)


def insert_job(connection: sqlite3.Connection, job: JobRecord, config_json: str) -> None:
    """The job, its class path entries and its posted config (already JSON) in one transaction."""
    with transaction(connection):
        connection.execute(_INSERT_JOB, job_values(job, to_json))
        connection.executemany(
            "INSERT INTO job_binaries (job_id, position, binary_id) VALUES (?, ?, ?)",
            [(job.id, position, binary_id) for position, binary_id in enumerate(job.binary_ids)],
        )
        connection.execute("INSERT INTO job_configs (job_id, config) VALUES (?, ?)", (job.id, config_json))


def select_jobs(
    connection: sqlite3.Connection, where: str, params: Sequence[Any], limit: int = -1
) -> list[JobRecord]:
    """Newest first, at most ``limit`` (-1: all) of the jobs ``where`` selects."""
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


def get_job(connection: sqlite3.Connection, job_id: str) -> JobRecord | None:
    jobs = select_jobs(connection, "id = ?", (job_id,))
    return jobs[0] if jobs else None


def list_jobs(connection: sqlite3.Connection, limit: int, state: JobState | None) -> list[JobRecord]:
    if limit <= 0:
        return []
    if state is None:
        return select_jobs(connection, "1 = 1", (), limit)
    return select_jobs(connection, "state = ?", (JobState(state).value,), limit)


def jobs_in_context(
    connection: sqlite3.Connection, context_id: str, states: Collection[JobState] | None
) -> list[JobRecord]:
    where = "context_id = ?"
    params: tuple[str, ...] = (context_id,)
    if states is not None:
        values = tuple(JobState(state).value for state in states)
        where += f" AND state IN ({placeholders(len(values))})"
        params += values
    return select_jobs(connection, where, params)


def update_job(
    connection: sqlite3.Connection, job_id: str, target: JobState, error: ErrorMap | None
) -> JobRecord | None:
    """Compare-and-set (base.Store.update_job)."""
    sources = tuple(state.value for state in job_sources(target))
    if not sources:
        return None
    end_ms = to_epoch_ms(utc_now()) if target.is_final else None
    error_json = None if error is None else to_json(error)
    with transaction(connection):
        updated = connection.execute(
            "UPDATE jobs SET state = ?, end_time = COALESCE(?, end_time), error = COALESCE(?, error)"
            f" WHERE id = ? AND state IN ({placeholders(len(sources))})",
            (target.value, end_ms, error_json, job_id, *sources),
        )
        if updated.rowcount == 0:
            return None
        job = select_jobs(connection, "id = ?", (job_id,))[0]
        queue_callback(connection, job, end_ms or 0)
    return job


def finish_job(
    connection: sqlite3.Connection,
    job_id: str,
    result_json: bytes,
    end_ms: int,
    result_file: str | None = None,
) -> JobRecord | None:
    """Compare-and-set to FINISHED and store the result, in one transaction (base.Store.finish_job);
    ``result_file``: the result is that file of the results folder (``result_json`` is empty)."""
    sources = tuple(state.value for state in job_sources(JobState.FINISHED))
    with transaction(connection):
        # RETURNING gives the updated row back: no second read of the job (a third of the cost).
        rows = connection.execute(
            "UPDATE jobs SET state = ?, end_time = ?"
            f" WHERE id = ? AND state IN ({placeholders(len(sources))}) RETURNING {_JOBS}",
            (JobState.FINISHED.value, end_ms, job_id, *sources),
        ).fetchall()
        if not rows:
            return None
        connection.execute(_SAVE_RESULT, (job_id, bytes(result_json), result_file))
        binary_ids = [
            binary_id
            for (binary_id,) in connection.execute(
                "SELECT binary_id FROM job_binaries WHERE job_id = ? ORDER BY position", (job_id,)
            )
        ]
        job = job_from_row(rows[0], binary_ids)
        queue_callback(connection, job, end_ms)
    return job


def get_job_config(connection: sqlite3.Connection, job_id: str) -> Mapping[str, Any] | None:
    row = connection.execute("SELECT config FROM job_configs WHERE job_id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    config: Mapping[str, Any] = json_value(row[0])
    return config


def get_result(connection: sqlite3.Connection, job_id: str) -> bytes | str | None:
    """The result's bytes, or the name of its file in the results folder."""
    row = connection.execute(
        "SELECT result, result_file FROM job_results WHERE job_id = ?", (job_id,)
    ).fetchone()
    if row is None:
        return None
    return str(row[1]) if row[1] is not None else bytes(row[0])
