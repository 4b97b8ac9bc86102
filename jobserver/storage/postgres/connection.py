"""Connecting to PostgreSQL: the pool's settings (query parameters of the store URL), the pool,
schema migrations, and turning "the database cannot be reached" into StoreUnavailable.

Outages: a connection is checked (an empty query) each time the pool hands it out, so one broken
by a restart of the server is replaced instead of failing a request; a caller waits at most
``pool_timeout`` seconds for a working connection. The pool keeps reconnecting in the background
with a growing delay (1, 2, 4 … s) for RECONNECT_TIMEOUT_S; then it shrinks, and the next request
starts a new series, so it never stops trying for good.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from jobserver.common.errors import ConfigError
from jobserver.common.records import to_epoch_ms, utc_now
from jobserver.storage.base import store_unavailable
from jobserver.storage.migrations import pending_migrations

Row = tuple[Any, ...]
Connection = psycopg.AsyncConnection[Row]
Pool = AsyncConnectionPool[Connection]

DEFAULT_POOL_MIN_SIZE = 1
DEFAULT_POOL_MAX_SIZE = 10
DEFAULT_POOL_TIMEOUT_S = 5.0
# libpq's connect_timeout when the URL sets none: a pool worker must not hang for minutes on a
# host that drops packets (libpq's default is to wait forever).
DEFAULT_CONNECT_TIMEOUT_S = 5
POOL_OPEN_TIMEOUT_S = 30.0
# Longer than an outage we mean to ride out (a minute), short enough that the gap between two
# reconnection attempts, and so the time to notice the server is back, stays around half a minute.
RECONNECT_TIMEOUT_S = 90.0

# Serialises schema migrations of servers that start together ("jobserve" in ASCII).
MIGRATION_LOCK_KEY = 0x6A6F627365727665

_POOL_PARAMETERS = ("pool_min_size", "pool_max_size", "pool_timeout")
_REASON_MAX_CHARS = 200


@dataclass(frozen=True, slots=True)
class PoolSettings:
    conninfo: str
    min_size: int = DEFAULT_POOL_MIN_SIZE
    max_size: int = DEFAULT_POOL_MAX_SIZE
    timeout_s: float = DEFAULT_POOL_TIMEOUT_S


def split_pool_settings(url: str) -> PoolSettings:
    """The connection URL without the ``pool_min_size``/``pool_max_size``/``pool_timeout`` query
    parameters (libpq would refuse them), and the pool settings they give."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {key: value for key, value in query if key in _POOL_PARAMETERS}
    try:
        min_size = int(given.get("pool_min_size", DEFAULT_POOL_MIN_SIZE))
        max_size = int(given.get("pool_max_size", max(min_size, DEFAULT_POOL_MAX_SIZE)))
        timeout_s = float(given.get("pool_timeout", DEFAULT_POOL_TIMEOUT_S))
    except ValueError as error:
        raise ConfigError(f"store url: pool settings must be numbers ({error})") from error
    if not 0 <= min_size <= max_size or max_size < 1 or not timeout_s > 0:
        raise ConfigError(
            "store url: need 0 <= pool_min_size <= pool_max_size, 1 <= pool_max_size and pool_timeout > 0"
        )
    if given:
        # quote, not quote_plus: libpq does not read "+" as a space.
        kept = urlencode([(key, value) for key, value in query if key not in given], quote_via=quote)
        url = urlunsplit(parts._replace(query=kept))
    return PoolSettings(url, min_size, max_size, timeout_s)


def create_pool(settings: PoolSettings) -> Pool:
    """A pool that is not open yet (``await pool.open(...)``)."""
    connect_arguments: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in conninfo_to_dict(settings.conninfo):
        connect_arguments["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
    return AsyncConnectionPool(
        settings.conninfo,
        min_size=settings.min_size,
        max_size=settings.max_size,
        timeout=settings.timeout_s,
        check=AsyncConnectionPool.check_connection,
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        kwargs=connect_arguments,
        open=False,
        name="jobserver-store",
    )


async def migrate(pool: Pool) -> None:
    """Apply the pending sql/postgres migrations in one transaction, under a lock that makes a
    server starting at the same moment wait and then find nothing left to do."""
    async with pool.connection() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        cursor = await connection.execute("SELECT to_regclass('schema_version') IS NOT NULL")
        applied = 0
        if (await cursor.fetchone() or (False,))[0]:
            cursor = await connection.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            applied = (await cursor.fetchone() or (0,))[0]
        for migration in pending_migrations("postgres", applied):
            # No parameters: psycopg sends the whole file as one multi-statement query.
            await connection.execute(migration.sql())
            await connection.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.name, to_epoch_ms(utc_now())),
            )


@contextlib.contextmanager
def outages_reported() -> Iterator[None]:
    """Raise StoreUnavailable instead of the driver's and the pool's "cannot reach the database"
    errors (refused, closed by the server, no connection in time). Integrity errors pass."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as error:
        raise store_unavailable(_short_reason(error)) from error


def _short_reason(error: psycopg.Error) -> str:
    if isinstance(error, PoolTimeout):
        return f"no database connection available ({error})"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = lines[0] if lines else type(error).__name__
    return reason if len(reason) <= _REASON_MAX_CHARS else reason[: _REASON_MAX_CHARS - 1] + "…"
