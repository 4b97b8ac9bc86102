"""The driver builds each job's ConfigTree without pyhocon's per-key parsing: same tree, faster."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pyhocon import ConfigFactory, ConfigTree, HOCONConverter

from driver.runner import JobRunner, _config_tree, _config_tree_from_json
from driver.spark import SESSION, SparkHandle
from jobserver.common.config import merge

CONFIG = {
    "spark": {"master": "local[2]", "jobserver": {"port": 8090, "sql": {"max-rows": 1000}}},
    "input": {"bench": True, "words": ["a", "b"], "nested": [{"k": 1}, [2, 3]], "none": None},
    "empty": {},
}


def through_pyhocon_constructor(values: Mapping[str, Any], *, root: bool = True) -> ConfigTree:
    """How the driver built trees before: ConfigTree's own constructor, node by node."""

    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            return through_pyhocon_constructor(value, root=False)
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return ConfigTree([(key, convert(value)) for key, value in values.items()], root=root)


def test_the_tree_holds_the_config() -> None:
    tree = _config_tree(json.loads(json.dumps(CONFIG)))
    assert isinstance(tree, ConfigTree) and tree.root and tree.history == {}
    assert isinstance(tree["input"], ConfigTree) and not tree["input"].root
    assert tree.get("spark.jobserver.port") == 8090
    assert tree.get_int("spark.jobserver.sql.max-rows") == 1000
    assert tree.get("input.words") == ["a", "b"]
    assert isinstance(tree.get("input.nested")[0], ConfigTree)
    assert tree.get("input.none") is None
    assert tree.get("missing", "fallback") == "fallback"
    assert tree.as_plain_ordered_dict() == CONFIG
    assert list(tree) == list(CONFIG)


def test_the_tree_is_the_one_pyhocon_builds() -> None:
    ours = _config_tree(CONFIG)
    assert ours == through_pyhocon_constructor(CONFIG) == ConfigFactory.from_dict(CONFIG)
    assert HOCONConverter.to_json(ours) == HOCONConverter.to_json(ConfigFactory.from_dict(CONFIG))
    assert vars(ours) == vars(through_pyhocon_constructor(CONFIG))
    assert vars(ours["input"]) == vars(through_pyhocon_constructor(CONFIG)["input"])


def test_a_job_may_change_its_tree() -> None:
    tree = _config_tree(CONFIG)
    tree.put("input.extra", 3)
    tree.put("added.path", "x")
    assert tree.get("input.extra") == 3 and tree.get("added.path") == "x"
    assert "extra" not in CONFIG["input"]
    assert copy.deepcopy(tree) == tree
    assert _config_tree(CONFIG) == through_pyhocon_constructor(CONFIG)  # one job's change stays its own


def test_the_tree_parsed_from_json_is_the_same_tree() -> None:
    document = json.dumps(CONFIG).encode()
    ours = _config_tree_from_json(document)
    assert ours == _config_tree(CONFIG) == through_pyhocon_constructor(CONFIG)
    assert vars(ours) == {"root": True, "history": {}}
    assert vars(ours["spark"]) == {"root": False}
    assert list(ours) == list(CONFIG)
    assert ours.get("input.nested")[0].get("k") == 1


class StandInContext:
    def setJobGroup(self, group_id: str, description: str, interrupt: bool = False) -> None:
        pass


SERVER_CONFIG = {
    "spark": {"master": "local[2]", "jobserver": {"port": 8090, "sql": {"max-rows": 1000}}},
    "shared": {"list": [1, {"k": "v"}], "object": {"a": 1}},
}


def job_runner(tmp_path: Path, server_config: dict[str, Any]) -> JobRunner:
    context = StandInContext()
    document = json.dumps(server_config).encode()
    return JobRunner(
        SparkHandle(kind=SESSION, session=context, spark_context=context),
        lambda message: None,
        lambda: None,
        max_jobs=1,
        context_config={},
        package_dir=tmp_path,
        result_chunk_bytes=1 << 20,
        server_config_json=lambda: document,
    )


@pytest.mark.parametrize(
    "posted",
    [
        {},
        {"input": {"x": [1, 2]}},
        {"spark": {"jobserver": {"sql": {"max-rows": 5}}, "extra": True}},
        {"shared": {"object": "now a string", "list": []}, "spark": {"master": {"now": "an object"}}},
        {"shared.object.a": 2},  # a literal key, as the server keeps it
    ],
)
def test_a_job_gets_its_posted_config_over_the_servers(tmp_path: Path, posted: dict[str, Any]) -> None:
    runner = job_runner(tmp_path, SERVER_CONFIG)
    expected = merge(SERVER_CONFIG, posted)  # what the server merged and sent before
    for prepared in (False, True):  # parsed for the job, or ahead of it
        if prepared:
            runner.prepare_config()
        tree = runner._job_config(json.dumps(posted).encode())
        assert tree == _config_tree(expected)
        assert list(tree) == list(expected)
        assert vars(tree) == {"root": True, "history": {}}
        assert all(vars(node) == {"root": False} for node in _nodes(tree) if node is not tree)
    runner.shutdown(1.0)


def test_a_jobs_change_to_its_config_stays_its_own(tmp_path: Path) -> None:
    runner = job_runner(tmp_path, SERVER_CONFIG)
    runner.prepare_config()
    first = runner._job_config(b'{"input": {"n": 1}}')
    first.put("spark.jobserver.port", 1)
    first["shared"]["list"].append("more")
    runner.prepare_config()
    second = runner._job_config(b"{}")
    assert second.get("spark.jobserver.port") == 8090
    assert second.get("shared.list") == [1, {"k": "v"}]
    assert "input" not in second
    runner.shutdown(1.0)


def _nodes(tree: Any) -> list[Any]:
    found = [tree]
    for value in tree.values():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, ConfigTree):
                found.extend(_nodes(item))
    return found
