"""The embedded default store: one SQLite file plus a folder of content-addressed blob files."""

from jobserver.storage.sqlite.connection import DEFAULT_BUSY_TIMEOUT_S
from jobserver.storage.sqlite.store import SqliteStore

__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "SqliteStore"]
