"""The ``store`` fixture: every contract test runs once per backend."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from jobserver.storage import Store, create_store
from jobserver.storage.write_behind import WriteBehindStore


class Backend:
    """Makes stores of one backend on the same database, and peeks at what they stored."""

    dialect = ""

    def __init__(self, tmp_path: Path) -> None:
        self.blob_dir = tmp_path / "state" / "blobs"

    def new_store(self) -> Store:
        raise NotImplementedError

    def applied_versions(self) -> list[int]:
        raise NotImplementedError

    def stored_blob_count(self) -> int:
        raise NotImplementedError

    def row_count(self, table: str) -> int:
        raise NotImplementedError

    def age_blob(self, sha256: str, seconds: float) -> None:
        """Make the blob look as if it had been put ``seconds`` earlier than it was."""
        raise NotImplementedError


class SqliteBackend(Backend):
    dialect = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.database = tmp_path / "state" / "db" / "jobserver.sqlite"

    def new_store(self) -> Store:
        return create_store(f"sqlite://{self.database}", blob_dir=self.blob_dir)

    def _query(self, sql: str) -> list[tuple[int, ...]]:
        connection = sqlite3.connect(self.database)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    def applied_versions(self) -> list[int]:
        return [row[0] for row in self._query("SELECT version FROM schema_version ORDER BY version")]

    def stored_blob_count(self) -> int:
        return sum(1 for path in self.blob_dir.iterdir() if not path.name.startswith("."))

    def row_count(self, table: str) -> int:
        return self._query(f"SELECT count(*) FROM {table}")[0][0]

    def age_blob(self, sha256: str, seconds: float) -> None:
        path = self.blob_dir / sha256
        moment = time.time() - seconds
        os.utime(path, (moment, moment))


class PostgresBackend(Backend):
    dialect = "postgres"

    def __init__(self, tmp_path: Path, url: str) -> None:
        super().__init__(tmp_path)
        self.url = url

    def new_store(self) -> Store:
        # The pool sizes ride on the URL, as in the server's configuration.
        return create_store(f"{self.url}?pool_min_size=1&pool_max_size=4", blob_dir=self.blob_dir)

    def _query(self, sql: str) -> list[tuple[int, ...]]:
        with psycopg.connect(self.url) as connection:
            return connection.execute(sql).fetchall()

    def applied_versions(self) -> list[int]:
        return [row[0] for row in self._query("SELECT version FROM schema_version ORDER BY version")]

    def stored_blob_count(self) -> int:
        return self._query("SELECT count(*) FROM blobs")[0][0]

    def row_count(self, table: str) -> int:
        return self._query(f"SELECT count(*) FROM {table}")[0][0]

    def age_blob(self, sha256: str, seconds: float) -> None:
        with psycopg.connect(self.url) as connection:
            connection.execute(
                "UPDATE blobs SET created_at = created_at - %s WHERE sha256 = %s",
                (round(seconds * 1000), sha256),
            )


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return SqliteBackend(tmp_path)
    # Requested only here, so that the sqlite runs never start PostgreSQL.
    return PostgresBackend(tmp_path, request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture(params=["plain", "write-behind", "write-behind-off"])
async def store(request: pytest.FixtureRequest, backend: Backend) -> AsyncIterator[Store]:
    """The backend's store as it is, and as the server uses it: through the write-behind layer,
    with write-behind on and off (the contract holds either way)."""
    opened = backend.new_store()
    if request.param != "plain":
        opened = WriteBehindStore(opened, enabled=request.param == "write-behind")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
