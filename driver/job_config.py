"""A job's config, and its context's, as the pyhocon ConfigTrees jobs read them.

A job's config is its posted config merged over the server's (both arrive as JSON: the server's
once, in ``Welcome``; the posted part in each ``StartJob``), the way the server merges configs:
objects key by key, anything else replaced. Keys are taken as they are: a JSON key with dots is
one key, not a path.

The tree is built through ConfigTree's mapping interface, one key at a time. Its constructor and
``put`` (and so ``ConfigFactory.from_dict``) read every key as a HOCON path, which would split a
key with dots, and the constructor fails on such a key when the path it names does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pyhocon import ConfigTree

# What json.loads gives for a config.
JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


def job_config(server_config_json: bytes, posted_config_json: bytes) -> ConfigTree:
    """The job's own tree: ``posted_config_json`` merged over ``server_config_json``.

    Both are parsed for every job, so no job's change to its tree reaches another's."""
    values = json.loads(server_config_json)
    _merge_into(values, json.loads(posted_config_json))
    return config_tree(values)


def config_tree(values: Mapping[str, JsonValue]) -> ConfigTree:
    """A root ConfigTree of JSON values; objects become ConfigTrees, in lists too."""
    return _tree(values, root=True)


def _tree(values: Mapping[str, JsonValue], *, root: bool) -> ConfigTree:
    tree = ConfigTree(root=root)
    for key, value in values.items():
        tree[key] = _node(value)  # the mapping's own assignment: the key stays one key
    return tree


def _node(value: JsonValue) -> JsonValue | ConfigTree:
    if isinstance(value, dict):
        return _tree(value, root=False)
    if isinstance(value, list):
        return [_node(item) for item in value]
    return value


def _merge_into(base: dict[str, JsonValue], override: Mapping[str, JsonValue]) -> None:
    for key, value in override.items():
        existing = base.get(key)
        if isinstance(value, dict) and isinstance(existing, dict):
            _merge_into(existing, value)
        else:
            base[key] = value
