"""Supervise mode's relaunch policy: the per-context flag over the server default, the backoff."""

from __future__ import annotations

from jobserver.contexts.relaunch import RelaunchPolicy, without_flag


def policy(default: bool = False) -> RelaunchPolicy:
    return RelaunchPolicy(default=default, max_restarts=3, first_backoff_s=1.0, max_backoff_s=5.0)


def test_the_context_flag_wins_over_the_server_default_in_every_spelling() -> None:
    assert policy(default=True).supervises({})
    assert not policy(default=False).supervises({})
    assert policy().supervises({"launcher": {"spark": {"driver": {"supervise": True}}}})
    assert policy().supervises({"launcher": {"spark.driver.supervise": "true"}})
    assert not policy(default=True).supervises({"launcher": {"spark.driver.supervise": "false"}})
    assert not policy(default=True).supervises({"launcher": {"spark": {"driver": {"supervise": False}}}})


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


def test_backoff_doubles_up_to_its_ceiling_and_restarts_stop_at_the_maximum() -> None:
    assert [policy().backoff_s(restart) for restart in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [policy().allows(restarts) for restarts in (0, 2, 3)] == [True, True, False]
