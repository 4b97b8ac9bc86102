"""structlog, configured once at the entry point: console output on a terminal, JSON otherwise."""

from __future__ import annotations

import logging
import re
import sys

import structlog

# A password in a URL's user part (scheme://user:password@host), and a secret passed as a
# parameter (password=…, token=…): whatever a log line carries, these never reach the log.
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")
_SECRET_PARAMETER = re.compile(r"((?:password|passwd|pwd|secret|token)=)[^&\s'\"]+", re.IGNORECASE)


def redact_secrets(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    for key, value in event_dict.items():
        if isinstance(value, str) and ("://" in value or "=" in value):
            event_dict[key] = _SECRET_PARAMETER.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", value))
    return event_dict


def configure_logging(*, json_output: bool | None = None, level: int = logging.INFO) -> None:
    if json_output is None:
        json_output = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # aiohttp's access log goes through the standard library; keep it, in the same stream.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
