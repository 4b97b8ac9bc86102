"""Numbered schema migrations, shared by the backends.

Each dialect has a folder ``sql/<dialect>/`` of files named ``NNNN_description.sql``. A backend
reads the highest applied version from its ``schema_version`` table, applies the pending files in
order, each in a transaction, and records each version in the same transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jobserver.resources import SQL_ROOT

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[A-Za-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The migration files of a dialect are inconsistent (missing folder, duplicate number)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def list_migrations(dialect: str, *, sql_root: Path = SQL_ROOT) -> list[Migration]:
    """Every migration of ``dialect``, lowest version first."""
    folder = sql_root / dialect
    if not folder.is_dir():
        raise MigrationError(f"no migration folder {folder}")
    migrations: dict[int, Migration] = {}
    for path in folder.iterdir():
        match = _FILE_NAME.match(path.name)
        if match is None:
            continue
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(f"two migrations numbered {version:04d} in {folder}")
        migrations[version] = Migration(version, path.stem, path)
    if not migrations:
        raise MigrationError(f"no migration files in {folder}")
    return [migrations[version] for version in sorted(migrations)]


def pending_migrations(dialect: str, applied_version: int, *, sql_root: Path = SQL_ROOT) -> list[Migration]:
    """The migrations of ``dialect`` newer than ``applied_version`` (0 for an empty database)."""
    migrations = list_migrations(dialect, sql_root=sql_root)
    newest = migrations[-1].version
    if applied_version > newest:
        # A newer server migrated this database; running old code against it could corrupt data.
        raise MigrationError(
            f"database schema version {applied_version} is newer than this server's ({newest})"
        )
    return [migration for migration in migrations if migration.version > applied_version]
