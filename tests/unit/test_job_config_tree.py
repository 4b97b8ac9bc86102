"""The driver builds each job's ConfigTree without pyhocon's per-key parsing: same tree, faster."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from pyhocon import ConfigFactory, ConfigTree, HOCONConverter

from driver.runner import _config_tree, _config_tree_from_json

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
