"""A job's config, and its context's, as the pyhocon ConfigTrees jobs read them.

A job's config is its posted config merged over the server's (both arrive as JSON: the server's
once, in ``Welcome``; the posted part in each ``StartJob``), the way the server merges configs:
objects key by key, anything else replaced (``ConfigTree.merge_configs``). Keys are taken as they
are: a JSON key with dots is one key, not a path.

Building the tree of the server's config (every key of it) is most of a job config's cost, so
``JobConfigs`` builds the next job's ahead, when the driver has least else to do (a job's end
acknowledged): on the job's way only its posted part is built and merged in.

The tree is built through ConfigTree's mapping interface, one key at a time. Its constructor and
``put`` (and so ``ConfigFactory.from_dict``) read every key as a HOCON path, which would split a
key with dots, and the constructor fails on such a key when the path it names does not exist.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping

from pyhocon import ConfigTree

# What json.loads gives for a config.
JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


def job_config(server_config_json: bytes, posted_config_json: bytes) -> ConfigTree:
    """The job's own tree: ``posted_config_json`` merged over ``server_config_json``."""
    server = json.loads(server_config_json)
    return _with_posted(server, config_tree(server), posted_config_json)


class JobConfigs:
    """Each job's config, from a tree of the server's config built ahead of the job."""

    def __init__(self, server_config_json: Callable[[], bytes]) -> None:
        self._server_config_json = server_config_json  # a restarted server's, after a rejoin
        self._lock = threading.Lock()  # jobs take trees on their threads, the main loop builds them
        # The server's config as sent, as parsed, and as a tree for the next job.
        self._spare: tuple[bytes, dict[str, JsonValue], ConfigTree] | None = None

    def prepare(self) -> None:
        """Build the server's tree for the next job, unless one is ready."""
        source = self._server_config_json()
        with self._lock:
            if self._spare is not None and self._spare[0] is source:
                return
        values = json.loads(source)
        spare = (source, values, config_tree(values))
        with self._lock:
            self._spare = spare

    def for_job(self, posted_config_json: bytes) -> ConfigTree:
        """The job's own tree (no job's change to it reaches another's: each takes a new one)."""
        source = self._server_config_json()
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None or spare[0] is not source:
            values = json.loads(source)
            spare = (source, values, config_tree(values))
        return _with_posted(spare[1], spare[2], posted_config_json)


def _with_posted(server: Mapping[str, JsonValue], tree: ConfigTree, posted_config_json: bytes) -> ConfigTree:
    """``tree`` (of ``server``) with the posted config merged in: only the branches it touches
    are built again."""
    if posted_config_json == b"{}":
        return tree
    posted: dict[str, JsonValue] = json.loads(posted_config_json)
    for key, value in posted.items():
        base = server.get(key)
        if isinstance(value, dict) and isinstance(base, dict):
            value = _merged(base, value)
        tree[key] = _node(value)  # the mapping's own assignment: the key stays one key
    return tree


def _merged(base: Mapping[str, JsonValue], override: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """Objects merge key by key; anything else in ``override`` replaces (``base`` stays as it is)."""
    merged = dict(base)
    for key, value in override.items():
        existing = merged.get(key)
        merged[key] = (
            _merged(existing, value) if isinstance(value, dict) and isinstance(existing, dict) else value
        )
    return merged


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
