"""Supervise mode: which contexts are launched again when their driver dies, and how soon.

The server itself relaunches supervised drivers (sjs-contract §7.4 left it to Spark's standalone
cluster manager, which limited it to one master and one deploy mode); the flag is per context
(``launcher.spark.driver.supervise``) with the server-wide ``spark.driver.supervise`` as default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobserver.common.config import parse_bool

FLAG = "spark.driver.supervise"


def supervised(context_config: Mapping[str, Any], default: bool) -> bool:
    value = _flattened(context_config.get("launcher") or {}).get(FLAG)
    return default if value is None else parse_bool(value)


def without_flag(context_config: Mapping[str, Any]) -> dict[str, Any]:
    """The context's settings minus the flag, which must not reach spark-submit: Spark's own
    supervision (standalone cluster mode only) would relaunch the driver a second time."""
    config = dict(context_config)
    launcher = config.get("launcher")
    if isinstance(launcher, Mapping):
        config["launcher"] = {key: value for key, value in _flattened(launcher).items() if key != FLAG}
    return config


def backoff_s(restart: int, first_s: float, max_s: float) -> float:
    """Wait before relaunch number ``restart`` (1, 2, …): doubling from ``first_s``."""
    return min(first_s * 2 ** max(restart - 1, 0), max_s)


def _flattened(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
