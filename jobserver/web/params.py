"""Typed query parameters and request bodies, with the contract's answers when they are wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobserver.common.config import BodyParseError, parse_body
from jobserver.common.errors import BadRequest

_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})


def flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadRequest(f"The query parameter '{name}' was malformed: '{value}' is not a valid Boolean value")


def number(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(
            f"The query parameter '{name}' was malformed: '{value}' is not a valid number"
        ) from None


def config_body(text: str) -> dict[str, Any]:
    try:
        return parse_body(text)
    except BodyParseError as error:
        raise BadRequest(f"Cannot parse config: {error}") from error
