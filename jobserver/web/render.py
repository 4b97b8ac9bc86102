"""Turning domain records into the contract's JSON (sjs-contract §1.5, §2)."""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from jobserver.common.records import BinaryRecord, ContextRecord, JobRecord, LogPage
from jobserver.common.states import JobState
from jobserver.common.timeformat import instant, job_time
from jobserver.storage.results import Result, ResultStream

ADHOC_CONTEXT_NAME = "<<ad-hoc>>"


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return raw_json_response(json.dumps(value, separators=(",", ":")).encode(), status, headers)


def raw_json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def success(message: str | None = None, status: int = 200) -> web.Response:
    body: dict[str, Any] = {"status": "SUCCESS"}
    if message is not None:
        body["result"] = message
    return json_response(body, status)


def job_report(job: JobRecord, *, status: str | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "jobId": job.id,
        "startTime": job_time(job.start_time),
        "classPath": job.class_path,
        "context": job.context_name or ADHOC_CONTEXT_NAME,
        "contextId": job.context_id,
        "duration": _duration(job),
        "status": status or job.state.value,
    }
    if job.user is not None:  # with authentication on: who submitted it
        report["user"] = job.user
    if job.error is not None and job.state in (JobState.ERROR, JobState.KILLED):
        report["result"] = dict(job.error)
    return report


def progress_info(progress: Mapping[str, Mapping[str, int]], updated: datetime.datetime) -> dict[str, Any]:
    """A running job's Spark work: ``jobs``, ``stages``, ``tasks`` (each ``total``, ``active``,
    ``completed``, ``failed``) and when the driver measured it."""
    return {**{key: dict(counts) for key, counts in progress.items()}, "updated": job_time(updated)}


def log_page(page: LogPage) -> dict[str, Any]:
    """Livy's shape of a log: ``from`` (the first line's number), ``total`` and ``log``."""
    return {"from": page.start, "total": page.total, "log": page.lines}


def with_result(document: dict[str, Any], result_json: bytes | None) -> bytes:
    """Serialise ``document`` with the job's stored JSON result spliced in as ``result``.

    The result was encoded once, in the driver; it is copied here, never decoded and re-encoded.
    """
    head = json.dumps(document, separators=(",", ":")).encode()
    if result_json is None:
        return head
    separator = b"," if len(document) else b""
    return head[:-1] + separator + b'"result":' + result_json + b"}"


def result_response(document: dict[str, Any], result: Result | None) -> web.Response:
    """``document`` with the job's result spliced in (``with_result``). A large result (a
    ``ResultStream``) goes with chunked transfer, read from where it is stored one chunk at a
    time while the client takes it (aiohttp waits for the socket to drain between chunks), so
    that the server never holds it whole; the body is the same bytes either way."""
    if not isinstance(result, ResultStream):
        return raw_json_response(with_result(document, result))
    return web.Response(body=_spliced(document, result), content_type="application/json")


# A stored result goes to the client in pieces of this size: aiohttp copies each piece once more to
# frame it (chunked transfer), and the socket keeps what it cannot take at once.
WRITE_BYTES = 256 << 10


async def _spliced(document: dict[str, Any], result: ResultStream) -> AsyncIterator[bytes | memoryview]:
    head = with_result(document, b"")  # ends in "result":}
    yield head[:-1]
    async for chunk in result.chunks():
        view = memoryview(chunk)
        for offset in range(0, len(view), WRITE_BYTES):
            yield view[offset : offset + WRITE_BYTES]
    yield b"}"


def _duration(job: JobRecord) -> str:
    if job.end_time is None:
        return "Job not done yet"
    elapsed_ms = round((job.end_time - job.start_time).total_seconds() * 1000)
    return f"{java_double(elapsed_ms / 1000.0)} secs"


def java_double(value: float) -> str:
    """A double as the JVM prints it: Python's repr, but E-notation from 1e7 up (1.0E7)."""
    if abs(value) < 1e7:
        return repr(value)
    digits_tuple, exponent = decimal.Decimal(repr(value)).as_tuple()[1:]
    digits = "".join(map(str, digits_tuple)).rstrip("0") or "0"
    power = len(digits_tuple) + int(exponent) - 1
    return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:] or '0'}E{power}"


def binary_info(binary: BinaryRecord) -> dict[str, str]:
    return {"binary-type": binary.binary_type.value, "upload-time": instant(binary.upload_time)}


def context_info(context: ContextRecord) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": context.id,
        "name": context.name,
        "startTime": instant(context.start_time),
        "endTime": instant(context.end_time) if context.end_time else "Empty",
        "state": context.state.value,
    }
    if context.application_id:
        info["applicationId"] = context.application_id
    if context.web_ui_url:
        info["url"] = context.web_ui_url
    if context.error:
        info["error"] = context.error
    if context.user is not None:  # with authentication on: who started it
        info["user"] = context.user
    return info
