"""Supervise mode's policy: the per-context flag over the server default, the backoff."""

from __future__ import annotations

from jobserver.contexts.relaunch import backoff_s, supervised, without_flag


def test_the_context_flag_wins_over_the_server_default_in_every_spelling() -> None:
    assert supervised({}, default=True)
    assert not supervised({}, default=False)
    assert supervised({"launcher": {"spark": {"driver": {"supervise": True}}}}, default=False)
    assert supervised({"launcher": {"spark.driver.supervise": "true"}}, default=False)
    assert not supervised({"launcher": {"spark.driver.supervise": "false"}}, default=True)
    assert not supervised({"launcher": {"spark": {"driver": {"supervise": False}}}}, default=True)


def test_the_flag_never_reaches_spark_submit_and_other_launcher_keys_stay() -> None:
    config = {
        "num-cpu-cores": 2,
        "launcher": {"spark": {"driver": {"supervise": True, "memory": "1g"}}, "verbose": True},
    }
    assert without_flag(config) == {
        "num-cpu-cores": 2,
        "launcher": {"spark.driver.memory": "1g", "verbose": True},
    }
    assert config["launcher"]["spark"]["driver"]["supervise"] is True, "the stored config is untouched"


def test_backoff_doubles_up_to_its_ceiling() -> None:
    assert [backoff_s(restart, 1.0, 5.0) for restart in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
