"""The SQL of binaries for the SQLite store: functions of a connection, run where database.py says.

The blob folder is passed in where a binary's blob is checked or deleted: those functions run on
the worker thread, which alone touches blob files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

from jobserver.common.records import BinaryRecord, BinaryType, from_epoch_ms
from jobserver.common.states import FINAL_JOB_STATES, JobState
from jobserver.storage.blobs import BlobFolder
from jobserver.storage.rows import BINARY_COLUMNS, binary_from_row, column_list
from jobserver.storage.sqlite.connection import placeholders, transaction

# Stay far below SQLITE_MAX_VARIABLE_NUMBER (999 on old builds).
_MAX_PARAMETERS = 500
_ACTIVE_JOB_STATES = tuple(state.value for state in JobState if state not in FINAL_JOB_STATES)
_BINARIES = column_list(BINARY_COLUMNS)


def add_binary_version(
    connection: sqlite3.Connection,
    blobs: BlobFolder,
    app_name: str,
    binary_type: BinaryType,
    sha256: str,
    size_bytes: int,
    upload_ms: int,
) -> BinaryRecord:
    """KeyError when the blob is not there."""
    if not blobs.has(sha256):
        raise KeyError(sha256)
    cursor = connection.execute(
        "INSERT INTO binaries (app_name, binary_type, upload_time, sha256, size_bytes)"
        " VALUES (?, ?, ?, ?, ?)",
        (app_name, binary_type.value, upload_ms, sha256, size_bytes),
    )
    if cursor.lastrowid is None:
        raise RuntimeError("SQLite gave no id for the new binary version")
    return BinaryRecord(cursor.lastrowid, app_name, binary_type, from_epoch_ms(upload_ms), sha256, size_bytes)


def latest_binaries(connection: sqlite3.Connection) -> list[BinaryRecord]:
    rows = connection.execute(
        f"SELECT {_BINARIES} FROM (SELECT {_BINARIES}, ROW_NUMBER() OVER"
        " (PARTITION BY app_name ORDER BY upload_time DESC, id DESC) AS newness FROM binaries)"
        " AS versions WHERE newness = 1 ORDER BY app_name"
    ).fetchall()
    return [binary_from_row(row) for row in rows]


def latest_binary(connection: sqlite3.Connection, app_name: str) -> BinaryRecord | None:
    row = connection.execute(
        f"SELECT {_BINARIES} FROM binaries WHERE app_name = ? ORDER BY upload_time DESC, id DESC LIMIT 1",
        (app_name,),
    ).fetchone()
    return None if row is None else binary_from_row(row)


def get_binaries(connection: sqlite3.Connection, binary_ids: Collection[int]) -> list[BinaryRecord]:
    """In the order asked for, each once; unknown ids are left out."""
    wanted = list(dict.fromkeys(binary_ids))
    by_id: dict[int, BinaryRecord] = {}
    for start in range(0, len(wanted), _MAX_PARAMETERS):
        chunk = wanted[start : start + _MAX_PARAMETERS]
        sql = f"SELECT {_BINARIES} FROM binaries WHERE id IN ({placeholders(len(chunk))})"
        by_id.update((record.id, record) for record in map(binary_from_row, connection.execute(sql, chunk)))
    return [by_id[binary_id] for binary_id in wanted if binary_id in by_id]


def binary_users(connection: sqlite3.Connection, app_name: str) -> list[str]:
    rows = connection.execute(
        "SELECT DISTINCT jobs.id FROM binaries"
        " JOIN job_binaries ON job_binaries.binary_id = binaries.id"
        " JOIN jobs ON jobs.id = job_binaries.job_id"
        f" WHERE binaries.app_name = ? AND jobs.state IN ({placeholders(len(_ACTIVE_JOB_STATES))})"
        " ORDER BY jobs.id",
        (app_name, *_ACTIVE_JOB_STATES),
    ).fetchall()
    return [job_id for (job_id,) in rows]


def delete_binary(connection: sqlite3.Connection, blobs: BlobFolder, app_name: str) -> bool:
    with transaction(connection):
        hashes = [
            sha256
            for (sha256,) in connection.execute(
                "SELECT DISTINCT sha256 FROM binaries WHERE app_name = ?", (app_name,)
            )
        ]
        connection.execute("DELETE FROM binaries WHERE app_name = ?", (app_name,))
        unused = [
            sha256
            for sha256 in hashes
            if connection.execute("SELECT 1 FROM binaries WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone()
            is None
        ]
    blobs.discard(unused)
    return bool(hashes)
