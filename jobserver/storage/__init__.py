"""Metadata storage: one interface (``Store``), one implementation per database."""

from __future__ import annotations

from pathlib import Path

from jobserver.storage.base import Store

__all__ = ["Store", "create_store"]


def create_store(store_url: str, *, blob_dir: Path) -> Store:
    """The store for ``spark.jobserver.store.url``: ``sqlite:///path`` or ``postgresql://…``."""
    if store_url.startswith("sqlite:///"):
        from jobserver.storage.sqlite import SqliteStore

        return SqliteStore(store_url.removeprefix("sqlite://"), blob_dir=blob_dir)
    if store_url.startswith(("postgresql://", "postgres://")):
        from jobserver.storage.postgres import PostgresStore

        return PostgresStore(store_url, blob_dir=blob_dir)
    from jobserver.common.errors import ConfigError

    raise ConfigError(f"unsupported store url {store_url!r}: use sqlite:///path or postgresql://…")
