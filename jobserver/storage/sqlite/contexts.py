"""The SQL of contexts for the SQLite store: functions of a connection, run where database.py says."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

from jobserver.common.errors import BadRequest
from jobserver.common.records import ContextRecord, to_epoch_ms, utc_now
from jobserver.common.states import ContextState, context_sources
from jobserver.storage.rows import CONTEXT_COLUMNS, column_list, context_from_row, context_values, to_json
from jobserver.storage.sqlite.connection import placeholders, transaction

_CONTEXTS = column_list(CONTEXT_COLUMNS)


def insert_context(connection: sqlite3.Connection, context: ContextRecord) -> None:
    try:
        connection.execute(
            f"INSERT INTO contexts ({_CONTEXTS}) VALUES ({placeholders(len(CONTEXT_COLUMNS))})",
            context_values(context, to_json),
        )
    except sqlite3.IntegrityError as error:  # contexts_active_name: another server got there first
        raise BadRequest(f"context {context.name} exists") from error


def latest_context(connection: sqlite3.Connection, name: str) -> ContextRecord | None:
    row = connection.execute(
        f"SELECT {_CONTEXTS} FROM contexts WHERE name = ? ORDER BY start_time DESC, id DESC LIMIT 1", (name,)
    ).fetchone()
    return None if row is None else context_from_row(row)


def list_contexts(
    connection: sqlite3.Connection, states: Collection[ContextState] | None, owner: str | None
) -> list[ContextRecord]:
    conditions = ["1 = 1"]
    params: list[str] = []
    if states is not None:
        params.extend(ContextState(state).value for state in states)
        conditions.append(f"state IN ({placeholders(len(params))})")
    if owner is not None:
        conditions.append("(owner = ? OR owner IS NULL)")
        params.append(owner)
    where = " AND ".join(conditions)
    rows = connection.execute(
        f"SELECT {_CONTEXTS} FROM contexts WHERE {where} ORDER BY start_time DESC, id DESC", params
    ).fetchall()
    return [context_from_row(row) for row in rows]


def update_context(
    connection: sqlite3.Connection,
    context_id: str,
    target: ContextState,
    *,
    error: str | None,
    application_id: str | None,
    web_ui_url: str | None,
) -> ContextRecord | None:
    """Compare-and-set (base.Store.update_context)."""
    sources = tuple(state.value for state in context_sources(target))
    if not sources:
        return None
    end_ms = to_epoch_ms(utc_now()) if target.is_final else None
    with transaction(connection):
        updated = connection.execute(
            "UPDATE contexts SET state = ?, end_time = COALESCE(?, end_time), error = COALESCE(?, error),"
            " application_id = COALESCE(?, application_id), web_ui_url = COALESCE(?, web_ui_url)"
            f" WHERE id = ? AND state IN ({placeholders(len(sources))})",
            (target.value, end_ms, error, application_id, web_ui_url, context_id, *sources),
        )
        if updated.rowcount == 0:
            return None
        row = connection.execute(f"SELECT {_CONTEXTS} FROM contexts WHERE id = ?", (context_id,)).fetchone()
    return context_from_row(row)
