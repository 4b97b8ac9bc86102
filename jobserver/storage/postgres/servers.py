"""The SQL of the servers sharing the store, for PostgreSQL: functions of a connection."""

from __future__ import annotations

from jobserver.common.records import ContextRecord, ServerRecord
from jobserver.common.states import ACTIVE_CONTEXT_STATES
from jobserver.storage.postgres.connection import Connection
from jobserver.storage.rows import (
    CONTEXT_COLUMNS,
    SERVER_COLUMNS,
    column_list,
    context_from_row,
    server_from_row,
    server_values,
)

_SERVERS = column_list(SERVER_COLUMNS)
_CONTEXTS = column_list(CONTEXT_COLUMNS)
_ACTIVE = sorted(state.value for state in ACTIVE_CONTEXT_STATES)


async def beat(connection: Connection, server: ServerRecord) -> str | None:
    cursor = await connection.execute(
        "SELECT adopted_by FROM servers WHERE server_id = %s FOR UPDATE", (server.server_id,)
    )
    row = await cursor.fetchone()
    await connection.execute(
        f"INSERT INTO servers ({_SERVERS}) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (server_id) DO UPDATE SET rest_url = EXCLUDED.rest_url,"
        " bus_endpoint = EXCLUDED.bus_endpoint, key_fingerprint = EXCLUDED.key_fingerprint,"
        " heartbeat_time = EXCLUDED.heartbeat_time, adopted_by = NULL",
        server_values(server),
    )
    return None if row is None else row[0]


async def list_servers(connection: Connection) -> list[ServerRecord]:
    cursor = await connection.execute(f"SELECT {_SERVERS} FROM servers ORDER BY server_id")
    return [server_from_row(row) for row in await cursor.fetchall()]


async def remove_server(connection: Connection, server_id: str) -> None:
    await connection.execute("DELETE FROM servers WHERE server_id = %s", (server_id,))


async def adopt_contexts(
    connection: Connection, dead_server_id: str, adopter_id: str, silent_since_ms: int
) -> list[ContextRecord]:
    """base.Store.adopt_contexts. Under READ COMMITTED a second adopter's UPDATE waits for the
    first's row lock, then re-checks ``adopted_by IS NULL`` and changes nothing."""
    async with connection.transaction():
        claimed = await connection.execute(
            "UPDATE servers SET adopted_by = %s WHERE server_id = %s AND heartbeat_time < %s"
            " AND adopted_by IS NULL",
            (adopter_id, dead_server_id, silent_since_ms),
        )
        if claimed.rowcount == 0:
            return []
        cursor = await connection.execute(
            f"UPDATE contexts SET owner = %s WHERE owner = %s AND state = ANY(%s) RETURNING {_CONTEXTS}",
            (adopter_id, dead_server_id, _ACTIVE),
        )
        rows = await cursor.fetchall()
    return [context_from_row(row) for row in rows]
