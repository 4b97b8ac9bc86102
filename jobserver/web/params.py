"""Typed query parameters and request bodies, with the contract's answers when they are wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from jobserver.common.bodies import MAX_BODY_BYTES, BodyParseError, parse_body, strict_json
from jobserver.common.errors import BadRequest, PayloadTooLarge

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


def number(query: Mapping[str, str], name: str, *, maximum: int) -> int | None:
    """A whole number from 0 to ``maximum`` (spark-jobserver's parameters are Ints)."""
    value = query.get(name)
    if value is None:
        return None
    try:
        parsed = int(value)
    except ValueError:
        raise BadRequest(
            f"The query parameter '{name}' was malformed: '{value}' is not a valid number"
        ) from None
    if not 0 <= parsed <= maximum:
        raise BadRequest(
            f"The query parameter '{name}' was malformed: '{value}' is not between 0 and {maximum}"
        )
    return parsed


async def config_body(request: web.Request) -> dict[str, Any]:
    """The request's body as a config (empty: ``{}``), or a 4xx saying what is wrong with it."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a config may have at most {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a config may have at most {MAX_BODY_BYTES} bytes")
    charset = request.charset or "utf-8"
    try:
        text = raw.decode(charset)
    except LookupError:
        raise BadRequest(f"Cannot parse config: unknown charset {charset!r}") from None
    except UnicodeDecodeError:
        raise BadRequest(f"Cannot parse config: the body is not {charset} text") from None
    try:
        return await parse_body(text)
    except BodyParseError as error:
        raise BadRequest(f"Cannot parse config: {error}") from error


async def json_document(request: web.Request) -> dict[str, Any]:
    """A body that must be one JSON object (schedules, workflows), or a 4xx saying why not."""
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a body may have at most {MAX_BODY_BYTES} bytes")
    try:
        document = strict_json(raw or b"null")
    except BodyParseError as error:
        raise BadRequest(str(error)) from error
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    return document
