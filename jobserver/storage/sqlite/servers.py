"""The SQL of the servers sharing the store, for SQLite: functions of a connection."""

from __future__ import annotations

import sqlite3

from jobserver.common.records import ContextRecord, ServerRecord
from jobserver.common.states import ACTIVE_CONTEXT_STATES
from jobserver.storage.rows import (
    CONTEXT_COLUMNS,
    SERVER_COLUMNS,
    column_list,
    context_from_row,
    server_from_row,
    server_values,
)
from jobserver.storage.sqlite.connection import placeholders, transaction

_SERVERS = column_list(SERVER_COLUMNS)
_CONTEXTS = column_list(CONTEXT_COLUMNS)
_ACTIVE = tuple(sorted(state.value for state in ACTIVE_CONTEXT_STATES))


def beat(connection: sqlite3.Connection, server: ServerRecord) -> str | None:
    with transaction(connection):
        row = connection.execute(
            "SELECT adopted_by FROM servers WHERE server_id = ?", (server.server_id,)
        ).fetchone()
        connection.execute(
            f"INSERT INTO servers ({_SERVERS}) VALUES ({placeholders(len(SERVER_COLUMNS))})"
            " ON CONFLICT (server_id) DO UPDATE SET rest_url = excluded.rest_url,"
            " bus_endpoint = excluded.bus_endpoint, key_fingerprint = excluded.key_fingerprint,"
            " heartbeat_time = excluded.heartbeat_time, adopted_by = NULL",
            server_values(server),
        )
    return None if row is None else row[0]


def list_servers(connection: sqlite3.Connection) -> list[ServerRecord]:
    rows = connection.execute(f"SELECT {_SERVERS} FROM servers ORDER BY server_id").fetchall()
    return [server_from_row(row) for row in rows]


def remove_server(connection: sqlite3.Connection, server_id: str) -> None:
    with transaction(connection):
        connection.execute("DELETE FROM servers WHERE server_id = ?", (server_id,))


def adopt_contexts(
    connection: sqlite3.Connection, dead_server_id: str, adopter_id: str, silent_since_ms: int
) -> list[ContextRecord]:
    """base.Store.adopt_contexts: BEGIN IMMEDIATE holds the write lock from the check to the move."""
    with transaction(connection):
        claimed = connection.execute(
            "UPDATE servers SET adopted_by = ? WHERE server_id = ? AND heartbeat_time < ?"
            " AND adopted_by IS NULL",
            (adopter_id, dead_server_id, silent_since_ms),
        )
        if claimed.rowcount == 0:
            return []
        rows = connection.execute(
            f"UPDATE contexts SET owner = ? WHERE owner = ? AND state IN ({placeholders(len(_ACTIVE))})"
            f" RETURNING {_CONTEXTS}",
            (adopter_id, dead_server_id, *_ACTIVE),
        ).fetchall()
    return [context_from_row(row) for row in rows]
