"""Listing numbered migration files and telling which are pending."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobserver.storage.migrations import MigrationError, list_migrations, pending_migrations


def write_migrations(root: Path, *names: str) -> Path:
    (root / "demo").mkdir(parents=True)
    for name in names:
        (root / "demo" / name).write_text(f"-- {name}\n")
    return root


def test_migrations_are_listed_in_version_order_ignoring_other_files(tmp_path: Path) -> None:
    root = write_migrations(tmp_path, "0010_later.sql", "0002_second.sql", "0001_initial.sql", "README.md")

    migrations = list_migrations("demo", sql_root=root)

    assert [(m.version, m.name) for m in migrations] == [
        (1, "0001_initial"),
        (2, "0002_second"),
        (10, "0010_later"),
    ]


def test_pending_migrations_are_those_newer_than_the_applied_version(tmp_path: Path) -> None:
    root = write_migrations(tmp_path, "0001_initial.sql", "0002_second.sql", "0003_third.sql")

    assert [m.version for m in pending_migrations("demo", 0, sql_root=root)] == [1, 2, 3]
    assert [m.version for m in pending_migrations("demo", 2, sql_root=root)] == [3]
    assert pending_migrations("demo", 3, sql_root=root) == []


def test_database_newer_than_the_server_is_refused(tmp_path: Path) -> None:
    root = write_migrations(tmp_path, "0001_initial.sql")

    with pytest.raises(MigrationError, match="newer"):
        pending_migrations("demo", 2, sql_root=root)


def test_two_files_with_one_number_are_refused(tmp_path: Path) -> None:
    root = write_migrations(tmp_path, "0001_initial.sql", "0001_other.sql")

    with pytest.raises(MigrationError, match="two migrations"):
        list_migrations("demo", sql_root=root)


def test_shipped_dialects_have_the_same_migration_numbers() -> None:
    sqlite = [m.version for m in list_migrations("sqlite")]
    postgres = [m.version for m in list_migrations("postgres")]

    assert sqlite == postgres and sqlite[0] == 1
