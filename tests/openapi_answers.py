"""Answers the tests receive, checked against the API's OpenAPI description (jobserver.web.openapi).

``tests.support.Api.call`` hands every answer to ``check_answer``: a JSON answer must match the
schema its route documents for its status (or the error envelope), and a route or status the
description does not list fails the test that met it. So the whole suite's traffic keeps the
description honest.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from jobserver.web.openapi import document


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    """Each documented path as a pattern; literal paths first, so /contexts beats /contexts/{tail}."""
    patterns = []
    for path in document()["paths"]:
        regex = re.sub(r"\{(tail|filename)\}", ".+", path)
        regex = re.sub(r"\{[^}]+\}", "[^/]+", regex)
        patterns.append((re.compile(f"^{regex}/?$"), path))
    return sorted(patterns, key=lambda item: ("{" in item[1], -len(item[1])))


def documented_path(path: str) -> str | None:
    bare = path.split("?", 1)[0]
    for pattern, template in _templates():
        if pattern.match(bare):
            return template
    return None


@cache
def _validator(path: str, method: str, status: str) -> Draft202012Validator | None:
    answer = document()["paths"][path][method]["responses"].get(status)
    if answer is None:
        raise AssertionError(f"{method.upper()} {path} answered {status}, which its description omits")
    content = answer.get("content", {}).get("application/json")
    if content is None:
        return None
    schema = {**content["schema"], "components": document()["components"]}
    return Draft202012Validator(schema)


def check_answer(method: str, path: str, status: int, content_type: str, body: Any) -> None:
    """Fail when a JSON answer does not match what the description says of it."""
    template = documented_path(path)
    if template is None or content_type != "application/json":
        return  # unmatched paths answer aiohttp's own 404/405 text
    operations = document()["paths"][template]
    override = re.search(r"[?&]_method=([A-Za-z]+)", path)
    verb = (override.group(1) if override and method.upper() == "POST" else method).lower()
    if verb not in operations:
        return  # a method the route does not have: aiohttp's 405
    validator = _validator(template, verb, str(status))
    if validator is None:
        return
    errors = sorted(validator.iter_errors(body), key=lambda error: list(error.path))
    if errors:
        details = "; ".join(f"{list(error.path)}: {error.message}" for error in errors[:3])
        raise AssertionError(f"{method} {path} → {status} does not match its OpenAPI schema: {details}")
