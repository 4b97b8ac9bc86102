"""Opening, migrating and closing the SQLite connections, their transactions, and turning "the
database cannot be reached" into StoreUnavailable.

Each connection has one user (database.py): the store's worker thread (``connect``: migrations,
binaries, retention, checkpoints, and any write the event loop could not make at once) or the
event loop (``connect_reader``; ``connect_loop_writer``: the short writes of the job path).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from jobserver.common.records import to_epoch_ms, utc_now
from jobserver.storage.base import store_unavailable
from jobserver.storage.migrations import pending_migrations

# How long a connection that may wait (the worker thread's, the loop's reader) waits for a lock
# another connection holds before the store reports StoreUnavailable.
DEFAULT_BUSY_TIMEOUT_S = 5.0
# Primary result codes that say the database cannot be got at (locked by another process past the
# busy timeout, file missing or unreadable, failing disk), as opposed to a wrong statement.
_OUTAGE_CODES = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
)
_OUTAGE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk I/O",
)


@contextlib.contextmanager
def outages_reported() -> Iterator[None]:
    """Raise StoreUnavailable instead of the OperationalErrors that mean "cannot get at the file"."""
    try:
        yield
    except sqlite3.OperationalError as error:
        if not _is_outage(error):
            raise
        raise store_unavailable(str(error)) from error


def _is_outage(error: sqlite3.OperationalError) -> bool:
    code = _error_code(error)
    if code is not None:
        # Extended codes (SQLITE_IOERR_WRITE, …) carry the primary code in their low byte.
        return code & 0xFF in _OUTAGE_CODES
    return any(message in str(error) for message in _OUTAGE_MESSAGES)


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock at BEGIN: a read-then-write cannot be overtaken by another
    # process sharing the file between its read and its write.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def connect(path: str, *, busy_timeout_s: float) -> sqlite3.Connection:
    """Open the database at ``path`` (creating its folder) and apply pending migrations."""
    if path != ":memory:":
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Readable by the server's user alone; SQLite gives its -wal and -shm files the same mode.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    # isolation_level=None: no implicit transactions; multi-statement writes use transaction().
    connection = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s, cached_statements=256)
    try:
        _enable_wal(connection, busy_timeout_s)
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
        migrate(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def connect_loop_writer(path: str) -> sqlite3.Connection:
    """A second writing connection to a database ``connect`` has opened, for the event loop.

    It never waits for a lock (busy timeout 0: a busy database raises at once, and the write goes
    to the worker thread instead) and never checkpoints the WAL itself: a checkpoint syncs the
    database file, which is the worker thread's job (``checkpoint``), not the event loop's.
    """
    connection = sqlite3.connect(path, isolation_level=None, timeout=0, cached_statements=256)
    try:
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=0")
        connection.execute("PRAGMA wal_autocheckpoint=0")
    except BaseException:
        connection.close()
        raise
    return connection


def is_busy(error: sqlite3.OperationalError) -> bool:
    """Another connection holds the write lock (SQLITE_BUSY, extended codes included)."""
    code = _error_code(error)
    if code is not None:
        return code & 0xFF == sqlite3.SQLITE_BUSY
    return "database is locked" in str(error)


def _error_code(error: sqlite3.OperationalError) -> int | None:
    # SQLite sets it on the errors it raises; an error made in Python (a test's) has none.
    code: int | None = getattr(error, "sqlite_errorcode", None)
    return code


def placeholders(count: int) -> str:
    """``?, ?, …`` for ``count`` parameters."""
    return ", ".join("?" * count)


def checkpoint(connection: sqlite3.Connection) -> None:
    """Copy the WAL's pages back into the database file and have the next write start the WAL
    over (RESTART). It holds the write lock meanwhile: the event loop's writes find it taken and
    queue behind it on the worker thread, so none can slip in and keep the WAL from restarting.
    A PASSIVE checkpoint racing the loop's writes would rarely catch up, and the WAL would grow
    without end."""
    connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()


def connect_reader(path: str, *, busy_timeout_s: float) -> sqlite3.Connection:
    """A second, read-only connection to a database ``connect`` has opened (and migrated)."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s, cached_statements=256)
    try:
        connection.execute("PRAGMA query_only=ON")
        connection.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
    except BaseException:
        connection.close()
        raise
    return connection


def close(connection: sqlite3.Connection) -> None:
    try:
        connection.execute("PRAGMA optimize")  # refreshes the planner's statistics; cheap
    finally:
        connection.close()


def migrate(connection: sqlite3.Connection) -> None:
    """Apply the pending sql/sqlite migrations in one transaction, which also holds off another
    process migrating the same file."""
    with transaction(connection):
        has_versions = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        applied = 0
        if has_versions:
            applied = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        for migration in pending_migrations("sqlite", applied):
            for statement in _statements(migration.sql()):
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, to_epoch_ms(utc_now())),
            )


def _enable_wal(connection: sqlite3.Connection, busy_timeout_s: float) -> None:
    # Switching a new database to WAL needs an exclusive lock and SQLite answers "locked" at once,
    # without its busy handler, while another process opens the same file: retry until the timeout.
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (``executescript`` would commit our transaction)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        yield pending
