"""A job's config as the job reads it: a pyhocon ConfigTree of its posted config over the server's,
merged as the server merges configs, with keys taken as they are."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pyhocon import ConfigFactory, ConfigTree, HOCONConverter

from driver.job_config import JobConfigs, config_tree, job_config

CONFIG = {
    "spark": {"master": "local[2]", "jobserver": {"port": 8090, "sql": {"max-rows": 1000}}},
    "input": {"bench": True, "words": ["a", "b"], "nested": [{"k": 1}, [2, 3]], "none": None},
    "empty": {},
}

SERVER_CONFIG = {
    "spark": {"master": "local[2]", "jobserver": {"port": 8090, "sql": {"max-rows": 1000}}},
    "shared": {"list": [1, {"k": "v"}], "object": {"a": 1}},
}


def as_json(values: dict[str, Any]) -> bytes:
    return json.dumps(values).encode()


def parsed_by_pyhocon(values: dict[str, Any]) -> ConfigTree:
    return ConfigFactory.parse_string(json.dumps(values))


def test_the_tree_holds_the_config() -> None:
    tree = config_tree(CONFIG)
    assert isinstance(tree, ConfigTree) and isinstance(tree["input"], ConfigTree)
    assert tree.get("spark.jobserver.port") == 8090
    assert tree.get_int("spark.jobserver.sql.max-rows") == 1000
    assert tree.get("input.words") == ["a", "b"]
    assert isinstance(tree.get("input.nested")[0], ConfigTree)
    assert tree.get("input.nested")[0].get("k") == 1
    assert tree.get("input.none") is None
    assert tree.get("missing", "fallback") == "fallback"
    assert tree.as_plain_ordered_dict() == CONFIG
    assert list(tree) == list(CONFIG)


def test_the_tree_is_the_one_pyhocon_parses_from_the_same_json() -> None:
    ours = config_tree(CONFIG)
    assert ours == parsed_by_pyhocon(CONFIG)
    assert HOCONConverter.to_json(ours) == HOCONConverter.to_json(parsed_by_pyhocon(CONFIG))


def test_a_job_may_change_its_tree() -> None:
    tree = config_tree(CONFIG)
    tree.put("input.extra", 3)
    tree.put("added.path", "x")
    assert tree.get("input.extra") == 3 and tree.get("added.path") == "x"
    assert "extra" not in CONFIG["input"]
    assert copy.deepcopy(tree) == tree


SPARK = SERVER_CONFIG["spark"]
SHARED = SERVER_CONFIG["shared"]


@pytest.mark.parametrize(
    ("posted", "expected"),
    [
        ({}, SERVER_CONFIG),
        ({"input": {"x": [1, 2]}}, {"spark": SPARK, "shared": SHARED, "input": {"x": [1, 2]}}),
        (
            {"spark": {"jobserver": {"sql": {"max-rows": 5}}, "extra": True}},
            {
                "spark": {
                    "master": "local[2]",
                    "jobserver": {"port": 8090, "sql": {"max-rows": 5}},
                    "extra": True,
                },
                "shared": SHARED,
            },
        ),
        (
            {"shared": {"object": "now a string", "list": []}, "spark": {"master": {"now": "an object"}}},
            {
                "spark": {"master": {"now": "an object"}, "jobserver": SPARK["jobserver"]},
                "shared": {"list": [], "object": "now a string"},
            },
        ),
    ],
    ids=["nothing", "new-object", "objects-merge", "others-replace"],
)
def test_a_job_gets_its_posted_config_over_the_servers(
    posted: dict[str, Any], expected: dict[str, Any]
) -> None:
    tree = job_config(as_json(SERVER_CONFIG), as_json(posted))
    assert tree == parsed_by_pyhocon(expected)
    assert tree.as_plain_ordered_dict() == expected
    assert list(tree) == list(expected)
    assert list(tree["spark"]) == list(expected["spark"])


def test_a_posted_key_with_dots_is_one_key_not_a_path() -> None:
    tree = job_config(as_json(SERVER_CONFIG), as_json({"shared.object.a": 2, "new.key": 3}))
    assert list(tree) == ["spark", "shared", "shared.object.a", "new.key"]
    assert tree.get("shared.object.a") == 1  # the path still reads the server's value
    assert tree.get("new.key", "absent") == "absent"  # and no path was made of the new key


def test_a_jobs_change_to_its_config_stays_its_own() -> None:
    server_json = as_json(SERVER_CONFIG)
    first = job_config(server_json, b'{"input": {"n": 1}}')
    first.put("spark.jobserver.port", 1)
    first["shared"]["list"].append("more")
    second = job_config(server_json, b"{}")
    assert second.get("spark.jobserver.port") == 8090
    assert second.get("shared.list") == [1, {"k": "v"}]
    assert "input" not in second


def test_a_contexts_config_tree_reads_its_settings() -> None:
    tree = config_tree({"context": {"name": "shared"}, "streaming": {"batch_interval": 500}})
    assert tree.get("context.name") == "shared"
    assert tree.get_int("streaming.batch_interval") == 500


def test_trees_built_ahead_give_each_job_the_same_config_and_its_own_tree() -> None:
    server = {"config": as_json(SERVER_CONFIG)}
    configs = JobConfigs(lambda: server["config"])
    configs.prepare()
    posted = as_json({"shared": {"object": {"b": 2}}, "input": {"n": 1}})
    first = configs.for_job(posted)  # the tree built ahead
    assert first == job_config(as_json(SERVER_CONFIG), posted)
    first.put("spark.jobserver.port", 1)
    second = configs.for_job(b"{}")  # none built ahead: built now
    assert second == parsed_by_pyhocon(SERVER_CONFIG)
    server["config"] = as_json({"restarted": True})  # a server that restarted says otherwise
    configs.prepare()
    assert configs.for_job(b"{}") == parsed_by_pyhocon({"restarted": True})
