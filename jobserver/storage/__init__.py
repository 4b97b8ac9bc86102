"""Metadata storage: one interface (``Store``, base.py), one implementation per database
(the packages ``sqlite`` and ``postgres``, which know nothing of each other), and what they share
(rows.py, blobs.py, migrations.py)."""

from __future__ import annotations

from pathlib import Path

from jobserver.storage.base import Store

__all__ = ["Store", "create_store"]


def create_store(store_url: str, *, blob_dir: Path, busy_timeout_s: float | None = None) -> Store:
    """The store for ``spark.jobserver.store.url``: ``sqlite:///path`` or ``postgresql://…``.

    ``busy_timeout_s`` is how long a SQLite write waits for a lock another process holds before
    it fails with StoreUnavailable (None: 5 s). PostgreSQL has no such wait; how long a call
    waits for a connection is the URL's ``pool_timeout``.
    """
    if store_url.startswith("sqlite:///"):
        from jobserver.storage.sqlite import DEFAULT_BUSY_TIMEOUT_S, SqliteStore

        return SqliteStore(
            store_url.removeprefix("sqlite://"),
            blob_dir=blob_dir,
            busy_timeout_s=DEFAULT_BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s,
        )
    if store_url.startswith(("postgresql://", "postgres://")):
        from jobserver.storage.postgres import PostgresStore

        return PostgresStore(store_url, blob_dir=blob_dir)
    from jobserver.common.config import redacted_url
    from jobserver.common.errors import ConfigError

    raise ConfigError(
        f"unsupported store url {redacted_url(store_url)!r}: use sqlite:///path or postgresql://…"
    )
