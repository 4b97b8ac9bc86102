"""Scalar settings as people write them: booleans as words, durations and sizes with units, lists as
lists or comma-separated strings. Shared by every module that reads configuration."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from jobserver.common.errors import ConfigError

_SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*([kmgt]?)b?\s*$", re.IGNORECASE)
_DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)\s*$", re.IGNORECASE)
_DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_bool(value: Any) -> bool:
    """HOCON's booleans, also when they come as strings (query parameters, overrides)."""
    return str(value).lower() in ("true", "on", "yes")


def parse_duration_s(value: Any) -> float:
    """``10s``, ``500ms``, ``5m``, ``72h``, a bare number of seconds, or a timedelta."""
    value = plain_duration(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION_PATTERN.match(str(value))
    if not match:
        raise ConfigError(f"{value!r} is not a duration (e.g. 500ms, 10s, 5m)")
    return float(match.group(1)) * _DURATION_UNITS_S[match.group(2).lower()]


def parse_size_bytes(value: Any) -> int:
    """``30m``, ``512k``, ``1g`` or a bare number of bytes."""
    value = plain_duration(value)
    if isinstance(value, datetime.timedelta):  # an unquoted 30m arrives as thirty minutes
        value = render_timedelta(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE_PATTERN.match(str(value))
    if not match:
        raise ConfigError(f"{value!r} is not a size (e.g. 512k, 30m, 1g)")
    exponent = " kmgt".index(match.group(2).lower() or " ")
    return int(match.group(1)) << (10 * exponent)


def plain_duration(value: Any) -> Any:
    """pyhocon's duration as a timedelta: with python-dateutil installed (croniter needs it)
    pyhocon reads ``30s`` as a relativedelta; months and years (never a setting of ours) count
    as 30 and 365 days. Anything else is returned as it is."""
    if type(value).__name__ != "relativedelta":
        return value
    return datetime.timedelta(
        days=value.days + 30 * value.months + 365 * value.years,
        hours=value.hours,
        minutes=value.minutes,
        seconds=value.seconds,
        microseconds=value.microseconds,
    )


def render_timedelta(value: datetime.timedelta) -> str:
    # pyhocon turns unquoted `512m` into 512 minutes; give back the text a user most likely wrote.
    total_ms = round(value.total_seconds() * 1000)
    if total_ms % 60_000 == 0:
        return f"{total_ms // 60_000}m"
    if total_ms % 1000 == 0:
        return f"{total_ms // 1000}s"
    return f"{total_ms}ms"


def string_list(value: Any) -> list[str]:
    """A list setting given as a list or as a comma-separated string."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def flatten_keys(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (``spark { yarn { queue = etl } }`` is ``spark.yarn.queue``),
    as Spark and spark-submit take them."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_keys(value, f"{name}."))
        else:
            flat[name] = value
    return flat
