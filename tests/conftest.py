"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pg import PostgresServer, find_postgres_bin_dir, start_postgres_server


def _started_postgres_server() -> Iterator[PostgresServer]:
    """A new PostgreSQL server, stopped afterwards. Skipped when no PostgreSQL binaries are
    installed, unless the CI environment variable is set: CI must run the PostgreSQL tests."""
    bin_dir = find_postgres_bin_dir()
    if bin_dir is None:
        reason = "PostgreSQL binaries (initdb, pg_ctl) not found on PATH nor in /usr/lib/postgresql/*/bin"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI is set: the PostgreSQL tests must run in CI")
        pytest.skip(reason)
    server = start_postgres_server(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session."""
    yield from _started_postgres_server()


@pytest.fixture
def private_postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, which the test may stop and start again."""
    yield from _started_postgres_server()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql://USER@127.0.0.1:PORT/jobserver``: one database shared by the session."""
    return postgres_server.create_database("jobserver")


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database for one test (dropped after it)."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])
