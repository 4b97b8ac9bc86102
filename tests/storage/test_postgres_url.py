"""Pool settings ride on the PostgreSQL URL and are taken off before libpq sees it."""

from __future__ import annotations

import pytest

from jobserver.common.errors import ConfigError
from jobserver.storage.postgres.connection import PoolSettings, split_pool_settings


def test_pool_settings_are_taken_off_the_url_keeping_other_parameters() -> None:
    url = (
        "postgresql://user@db:5432/jobs?pool_min_size=2&sslmode=require&pool_max_size=8"
        "&options=-c%20x%3D1&pool_timeout=2.5"
    )

    assert split_pool_settings(url) == PoolSettings(
        "postgresql://user@db:5432/jobs?sslmode=require&options=-c%20x%3D1", 2, 8, 2.5
    )


def test_url_without_pool_settings_is_kept_as_is_with_defaults() -> None:
    url = "postgres://user:p%40ss@db/jobs?application_name=js+1"

    assert split_pool_settings(url) == PoolSettings(url)


@pytest.mark.parametrize(
    "query", ["pool_timeout=0", "pool_timeout=soon", "pool_min_size=3&pool_max_size=2", "pool_max_size=0"]
)
def test_unusable_pool_settings_are_a_configuration_error(query: str) -> None:
    with pytest.raises(ConfigError, match="store url"):
        split_pool_settings(f"postgresql://db/jobs?{query}")
