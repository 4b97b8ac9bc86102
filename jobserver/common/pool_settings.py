"""Warm driver pools (``spark.jobserver.pool``): drivers started before any job asks for them.

Each pool is a name, a size (drivers kept warm and idle), the context settings it serves (laid
over ``spark.context-settings`` as an ad-hoc job's are), how many jobs a driver runs before it is
replaced (``max-jobs``), how long a driver beyond the size may stay idle (``idle-timeout``), and in
proxy-user mode the user its drivers run as (``run-as``). An ad-hoc job takes a pooled driver only
when its effective settings are those of the pool (``settings_key``), proxy user included.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jobserver.common.context_settings import checked, with_canonical_names
from jobserver.common.errors import ConfigError
from jobserver.common.values import parse_duration_s

PROXY_USER = "spark.proxy.user"
POOL_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass(frozen=True, slots=True)
class PoolSettings:
    name: str
    size: int  # idle drivers kept warm
    max_jobs: int  # jobs a driver runs before it is replaced
    idle_timeout_s: float  # how long a driver beyond ``size`` may stay idle
    run_as: str  # the proxy user its drivers run as ("" for none)
    context_settings: Mapping[str, Any]  # over spark.context-settings, as a job's own would be


def pool_settings(section: Any, context_defaults: Mapping[str, Any]) -> tuple[PoolSettings, ...]:
    """Every pool of ``spark.jobserver.pool`` (an object of pool name to its settings), checked."""
    if not section:
        return ()
    if not isinstance(section, Mapping):
        raise ConfigError("spark.jobserver.pool must be an object of pool name to settings")
    pools = []
    for name, values in section.items():
        where = f"spark.jobserver.pool.{name}"
        if not name or not set(name) <= POOL_NAME_CHARACTERS:
            raise ConfigError(f"{where}: a pool's name holds only letters, digits, '_' and '-'")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where} must be an object")
        try:
            pool = PoolSettings(
                name=name,
                size=_count(values, "size", 1),
                max_jobs=_count(values, "max-jobs", 50, minimum=1),
                idle_timeout_s=parse_duration_s(values.get("idle-timeout", "5m")),
                run_as=str(values.get("run-as", "") or ""),
                context_settings=with_canonical_names(values.get("context-settings", {}) or {}),
            )
            checked(pool_context_config(pool, lambda settings: _merged(context_defaults, settings)))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from error
        pools.append(pool)
    return tuple(pools)


def pool_context_config(
    pool: PoolSettings, under: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """The settings the pool's drivers are launched with (those an ad-hoc job must have):
    ``under`` lays the pool's context settings over the server's defaults (and its cluster's)."""
    config = under(pool.context_settings)
    if pool.run_as:
        config[PROXY_USER] = pool.run_as
    return config


def settings_key(config: Mapping[str, Any]) -> str:
    """Two sets of context settings are the same launch when their keys are equal: objects
    compared key by key (``a.b = 1`` is ``a { b = 1 }``), values as text (``2`` and ``"2"``
    launch the same driver)."""
    return json.dumps(_as_text(config), sort_keys=True, separators=(",", ":"))


def _as_text(value: Any) -> Any:
    if isinstance(value, Mapping):
        nested: dict[str, Any] = {}
        for key, item in value.items():
            *parents, leaf = str(key).strip('"').split(".")
            target = nested
            for part in parents:
                if not isinstance(target.get(part), dict):
                    target[part] = {}
                target = target[part]
            converted = _as_text(item)
            if isinstance(converted, dict) and isinstance(target.get(leaf), dict):
                target[leaf].update(converted)
            else:
                target[leaf] = converted
        return nested
    if isinstance(value, list | tuple):
        return [_as_text(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _count(values: Mapping[str, Any], key: str, default: int, *, minimum: int = 0) -> int:
    raw = values.get(key, default)
    try:
        number = int(raw)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{key} must be a whole number, not {raw!r}") from error
    if number < minimum:
        raise ConfigError(f"{key} must be at least {minimum}")
    return number
