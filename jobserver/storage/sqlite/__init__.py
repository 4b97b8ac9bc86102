"""The embedded default store: one SQLite file plus a folder of content-addressed blob files.

store.py is the Store; database.py says which connection and thread each statement runs on;
connection.py opens, migrates and closes connections; binaries.py, contexts.py, jobs.py and
retention.py hold the SQL, as functions of a connection.
"""

from jobserver.storage.sqlite.connection import DEFAULT_BUSY_TIMEOUT_S
from jobserver.storage.sqlite.store import SqliteStore

__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "SqliteStore"]
