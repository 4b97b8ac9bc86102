"""The production store: PostgreSQL through psycopg 3 (async) and a connection pool."""

from jobserver.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
