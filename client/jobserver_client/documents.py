"""A workflow (or a schedule's job config) from a file: JSON, or HOCON when pyhocon is installed
(it is with the server; the client alone needs ``pip install pyhocon`` for HOCON files).

The server takes JSON only, so a HOCON file is read here and sent as JSON. In HOCON, a step's
reference to an earlier step's result goes in quotes, ``"${steps.ingest.result}"``, or inside a
config given as text (``config = \"\"\"input = ${steps.ingest.result}\"\"\"``): unquoted, HOCON
itself would try to resolve it, and it names no key of the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class DocumentError(ValueError):
    """A file that cannot be read as a JSON or HOCON object; the message says which and why."""


def read_text(source: str | Path) -> str:
    """A file's text; ``-`` is standard input."""
    if str(source) == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text()
    except OSError as error:
        raise DocumentError(f"cannot read {source}: {error.strerror or error}") from error


def parse_document(text: str, source: str = "<text>") -> dict[str, Any]:
    """One JSON object, or HOCON text read as one."""
    try:
        document = json.loads(text)
    except ValueError:
        document = _parse_hocon(text, source)
    if not isinstance(document, dict):
        raise DocumentError(f"{source} holds no JSON or HOCON object")
    return document


def read_document(source: str | Path) -> dict[str, Any]:
    return parse_document(read_text(source), str(source))


def _parse_hocon(text: str, source: str) -> Any:
    try:
        from pyhocon import ConfigFactory  # optional: the client alone needs only the standard library
    except ImportError:
        raise DocumentError(
            f"{source} is not JSON, and reading HOCON needs pyhocon (pip install pyhocon)"
        ) from None
    try:
        return ConfigFactory.parse_string(text).as_plain_ordered_dict()
    except Exception as error:  # pyhocon raises several kinds (parse, substitution)
        hint = ' (quote step results: "${steps.<name>.result}")' if "${steps." in text else ""
        raise DocumentError(f"{source} is neither JSON nor HOCON: {error}{hint}") from error
