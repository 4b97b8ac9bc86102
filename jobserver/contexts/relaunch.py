"""Supervise mode: which contexts are launched again when their driver dies, how often and how soon.

The server itself relaunches supervised drivers (sjs-contract §7.4 left it to Spark's standalone
cluster manager, which limited it to one master and one deploy mode); the flag is per context
(``launcher.spark.driver.supervise``) with the server-wide ``spark.driver.supervise`` as default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobserver.common.config import Settings
from jobserver.common.values import flatten_keys, parse_bool

FLAG = "spark.driver.supervise"


@dataclass(frozen=True, slots=True)
class RelaunchPolicy:
    default: bool  # spark.driver.supervise
    max_restarts: int
    first_backoff_s: float
    max_backoff_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RelaunchPolicy:
        return cls(
            default=settings.supervise,
            max_restarts=settings.supervise_max_restarts,
            first_backoff_s=settings.supervise_backoff_s,
            max_backoff_s=settings.supervise_max_backoff_s,
        )

    def supervises(self, context_config: Mapping[str, Any]) -> bool:
        value = flatten_keys(context_config.get("launcher") or {}).get(FLAG)
        return self.default if value is None else parse_bool(value)

    def allows(self, restarts_so_far: int) -> bool:
        return restarts_so_far < self.max_restarts

    def backoff_s(self, restart: int) -> float:
        """Wait before relaunch number ``restart`` (1, 2, …): doubling from the first backoff."""
        return float(min(self.first_backoff_s * 2 ** max(restart - 1, 0), self.max_backoff_s))


def without_flag(context_config: Mapping[str, Any]) -> dict[str, Any]:
    """The context's settings minus the flag, which must not reach spark-submit: Spark's own
    supervision (standalone cluster mode only) would relaunch the driver a second time."""
    config = dict(context_config)
    launcher = config.get("launcher")
    if isinstance(launcher, Mapping):
        config["launcher"] = {key: value for key, value in flatten_keys(launcher).items() if key != FLAG}
    return config
