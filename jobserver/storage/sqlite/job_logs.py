"""The SQL of job logs for the SQLite store: functions of a connection, run where database.py says."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from jobserver.storage.sqlite.connection import transaction


def append_job_log(
    connection: sqlite3.Connection, job_id: str, first_line: int, lines: Sequence[str]
) -> None:
    with transaction(connection):
        connection.executemany(
            "INSERT INTO job_logs (job_id, line_no, line) VALUES (?, ?, ?)"
            " ON CONFLICT (job_id, line_no) DO NOTHING",
            [(job_id, first_line + offset, line) for offset, line in enumerate(lines)],
        )


def job_log(connection: sqlite3.Connection, job_id: str, start: int, size: int) -> tuple[int, list[str]]:
    # Line numbers have no gaps: the last one tells how many there are, through the primary key.
    last = connection.execute("SELECT MAX(line_no) FROM job_logs WHERE job_id = ?", (job_id,)).fetchone()
    total = 0 if last is None or last[0] is None else int(last[0]) + 1
    if size <= 0 or start >= total:
        return total, []
    rows = connection.execute(
        "SELECT line FROM job_logs WHERE job_id = ? AND line_no >= ? ORDER BY line_no LIMIT ?",
        (job_id, start, size),
    ).fetchall()
    return total, [str(row[0]) for row in rows]
