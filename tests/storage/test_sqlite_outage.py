"""SQLite errors that mean "cannot get at the database file" are reported as StoreUnavailable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jobserver.common.errors import StoreUnavailable
from jobserver.storage import create_store
from jobserver.storage.sqlite.connection import outages_reported


async def test_database_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    folder_in_the_way = tmp_path / "jobserver.sqlite"
    folder_in_the_way.mkdir()
    store = create_store(f"sqlite://{folder_in_the_way}", blob_dir=tmp_path / "blobs")

    with pytest.raises(StoreUnavailable, match=r"^metadata store unavailable: unable to open database file"):
        await store.open()


@pytest.mark.parametrize("message", ["database is locked", "disk I/O error"])
def test_locked_and_failing_disk_are_unavailable(message: str) -> None:
    with pytest.raises(StoreUnavailable, match=message), outages_reported():
        raise sqlite3.OperationalError(message)


def test_other_operational_errors_pass_unchanged() -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"), outages_reported():
        raise sqlite3.OperationalError("no such table: nothing")
