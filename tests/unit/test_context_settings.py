"""The context settings the server reads itself: the mem-per-node alias, known factories, the
start's deadlines and the python settings, checked before any driver is launched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driver.protocol import CONTEXT_FACTORIES
from jobserver.common.context_settings import (
    StartDeadlines,
    checked,
    start_deadlines,
    with_canonical_names,
)
from jobserver.common.errors import ConfigError


def test_mem_per_node_is_memory_per_node() -> None:
    assert with_canonical_names({"mem-per-node": "1g", "num-cpu-cores": 2}) == {
        "memory-per-node": "1g",
        "num-cpu-cores": 2,
    }


def test_mem_per_node_and_memory_per_node_agreeing_are_one_setting() -> None:
    assert with_canonical_names({"mem-per-node": "1g", "memory-per-node": "1g"}) == {"memory-per-node": "1g"}


def test_mem_per_node_and_memory_per_node_differing_is_an_error_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"mem-per-node \(1g\) and memory-per-node \(2g\) differ"):
        with_canonical_names({"mem-per-node": "1g", "memory-per-node": "2g"})


def test_every_known_factory_passes_and_no_factory_means_the_default() -> None:
    for factory in CONTEXT_FACTORIES:
        assert checked({"context-factory": factory})["context-factory"] == factory
    assert checked({}) == {}


def test_an_unknown_factory_is_refused_naming_every_supported_one() -> None:
    with pytest.raises(ConfigError) as refused:
        checked({"context-factory": "com.example.NoSuchFactory"})
    message = str(refused.value)
    assert message.startswith("Unknown context-factory com.example.NoSuchFactory; supported factories: ")
    assert all(factory in message for factory in CONTEXT_FACTORIES)


def test_start_deadlines_are_read_as_seconds() -> None:
    deadlines = start_deadlines({"forked-jvm-init-timeout": "45s", "context-init-timeout": "2m"})
    assert deadlines == StartDeadlines(connect_s=45.0, init_s=120.0)


def test_start_deadlines_default_to_the_contracts_for_settings_stored_without_them() -> None:
    assert start_deadlines({}) == StartDeadlines(connect_s=30.0, init_s=60.0)


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("context-init-timeout", "soon", "context-init-timeout: 'soon' is not a duration"),
        ("forked-jvm-init-timeout", "0s", "forked-jvm-init-timeout must be longer than 0"),
    ],
)
def test_a_deadline_that_is_no_duration_is_refused_naming_it(key: str, value: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        checked({key: value})


def test_python_paths_become_absolute_from_the_servers_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = checked({"python": {"paths": ["lib", "/srv/shared"], "executable": "/usr/bin/python3"}})
    assert settings["python"] == {
        "paths": [str(tmp_path / "lib"), "/srv/shared"],
        "executable": "/usr/bin/python3",
    }


def test_python_paths_may_be_a_comma_separated_string() -> None:
    assert checked({"python": {"paths": "/a, /b"}})["python"]["paths"] == ["/a", "/b"]


@pytest.mark.parametrize(
    ("python", "complaint"),
    [
        ({"executable": ["/usr/bin/python3"]}, "python.executable must be a program's path"),
        ({"paths": {"a": 1}}, "python.paths must be a list of folders"),
        ("python3", "python must hold paths and executable"),
    ],
)
def test_python_settings_of_the_wrong_shape_are_refused(python: object, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        checked({"python": python})


def test_checking_leaves_the_settings_it_was_given_alone() -> None:
    settings = {"python": {"paths": ["lib"]}}
    checked(settings)
    assert settings == {"python": {"paths": ["lib"]}}
    assert os.path.isabs(checked(settings)["python"]["paths"][0])
