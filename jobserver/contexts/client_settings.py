"""Which context settings a client may set (``POST /contexts``, a job's ``spark.context-settings``).

A context's settings reach spark-submit, so some of them run code or change where and as whom
the driver runs: ``spark.driver.extraJavaOptions=-XX:OnOutOfMemoryError=…``,
``spark.executorEnv.LD_PRELOAD``, ``launcher.spark.master``, ``--properties-file``,
``spark.proxy.user``. The operator lists what clients may set
(``spark.jobserver.client-settings.allowed``) and what they may never set even then
(``…denied``); the server's own defaults and the contexts it starts from its configuration are
not checked. Patterns match dotted keys, ``*`` any run of characters (dots included). A denied
pattern is matched against the key as written and against the Spark setting it becomes
(``passthrough.X`` is ``X``, ``hadoop.X`` is ``spark.hadoop.X``, ``launcher.spark.X`` is
``spark.X``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jobserver.common.errors import Forbidden

# A context setting's prefix, and what it is replaced by in the Spark setting it becomes.
_SPARK_PREFIXES = (("passthrough.", ""), ("hadoop.", "spark.hadoop."), ("launcher.spark.", "spark."))


class ClientSettingsPolicy:
    def __init__(self, *, allowed: Sequence[str], denied: Sequence[str]) -> None:
        self._allowed = tuple(allowed)
        self._denied = tuple(denied)

    def check(self, settings: Mapping[str, Any]) -> None:
        """Forbidden (403), naming the first setting a client may not set."""
        for key in _dotted_keys(settings):
            allowed = any(fnmatch.fnmatchcase(key, pattern) for pattern in self._allowed)
            names = (key, spark_key(key))
            denied = any(fnmatch.fnmatchcase(name, pattern) for name in names for pattern in self._denied)
            if denied or not allowed:
                raise Forbidden(f"Context setting {key} may not be set by clients")


def spark_key(key: str) -> str:
    """The Spark setting a context setting becomes (launcher.py maps them so)."""
    for prefix, replacement in _SPARK_PREFIXES:
        if key.startswith(prefix):
            return replacement + key.removeprefix(prefix)
    return key


def _dotted_keys(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _dotted_keys(value, f"{name}.")
        else:
            yield name


PROXY_USER = "spark.proxy.user"


def proxy_user_of(config: Mapping[str, Any]) -> str | None:
    """The user a context's driver runs as (spark-submit --proxy-user), written flat or nested."""
    value = config.get(PROXY_USER)
    if value is None:
        nested: Any = config
        for part in PROXY_USER.split("."):
            nested = nested.get(part) if isinstance(nested, Mapping) else None
        value = nested
    return str(value) if value not in (None, "") else None
