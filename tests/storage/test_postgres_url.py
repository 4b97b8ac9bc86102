"""Pool sizes ride on the PostgreSQL URL and are taken off before libpq sees it."""

from __future__ import annotations

from jobserver.storage.postgres import DEFAULT_POOL_MAX_SIZE, DEFAULT_POOL_MIN_SIZE, split_pool_settings


def test_pool_sizes_are_taken_off_the_url_keeping_other_parameters() -> None:
    url = "postgresql://user@db:5432/jobs?pool_min_size=2&sslmode=require&pool_max_size=8&options=-c%20x%3D1"

    conninfo, min_size, max_size = split_pool_settings(url)

    assert (conninfo, min_size, max_size) == (
        "postgresql://user@db:5432/jobs?sslmode=require&options=-c%20x%3D1",
        2,
        8,
    )


def test_url_without_pool_sizes_is_kept_as_is_with_default_sizes() -> None:
    url = "postgres://user:p%40ss@db/jobs?application_name=js+1"

    assert split_pool_settings(url) == (url, DEFAULT_POOL_MIN_SIZE, DEFAULT_POOL_MAX_SIZE)
