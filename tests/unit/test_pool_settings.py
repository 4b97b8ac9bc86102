"""Pool settings as an operator writes them, and when an ad-hoc job's settings are a pool's."""

from __future__ import annotations

import pytest

from driver.session_state import changes
from jobserver.common.config import load_settings, merge
from jobserver.common.errors import ConfigError
from jobserver.common.pool_settings import pool_context_config, settings_key


def test_a_pool_takes_its_defaults_and_the_context_settings_under_it() -> None:
    settings = load_settings(
        None, {"spark.jobserver.pool": {"etl": {"context-settings": {"num-cpu-cores": 2}}}}
    )
    (pool,) = settings.pools
    assert (pool.name, pool.size, pool.max_jobs, pool.idle_timeout_s, pool.run_as) == (
        "etl",
        1,
        50,
        300.0,
        "",
    )
    config = pool_context_config(pool, lambda own: merge(settings.context_defaults, own))
    assert config["num-cpu-cores"] == 2
    assert config["launcher"] == settings.context_defaults["launcher"]


def test_no_pool_is_configured_by_default() -> None:
    assert load_settings().pools == ()


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ({"bad name": {}}, "a pool's name holds only letters"),
        ({"p": {"size": "many"}}, "size must be a whole number"),
        ({"p": {"max-jobs": 0}}, "max-jobs must be at least 1"),
        ({"p": {"context-settings": {"context-factory": "nope"}}}, "Unknown context-factory nope"),
    ],
)
def test_a_wrong_pool_stops_the_server_naming_the_key(pool: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, {"spark.jobserver.pool": pool})


def test_settings_are_the_same_launch_whether_dotted_nested_or_numbers_as_text() -> None:
    nested = {"spark": {"executor": {"memory": "1g"}}, "num-cpu-cores": 2, "flag": True}
    dotted = {"spark.executor.memory": "1g", "num-cpu-cores": "2", "flag": "true"}
    assert settings_key(nested) == settings_key(dotted)
    assert settings_key(nested) != settings_key({**dotted, "num-cpu-cores": 3})
    assert settings_key(nested) != settings_key({**dotted, "spark.proxy.user": "alice"})


def test_a_session_probe_that_failed_counts_as_a_change() -> None:
    before = {"temporary views": 0, "SQL configuration": 7}
    assert changes(before, dict(before)) == []
    assert changes(before, {**before, "temporary views": 1}) == ["temporary views"]
    assert changes(before, {**before, "SQL configuration": RuntimeError("py4j")}) == ["SQL configuration"]
