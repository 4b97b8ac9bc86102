"""Job callbacks (``callbackUrl``): POST the outcome of a finished or failed job to the client.

This module makes one attempt; callback_queue.py stores what is pending and delivers it in the
background with retries, never holding up other jobs. Killed jobs are not reported
(spark-jobserver documented it so; its code did not always keep to it). The standard library's
HTTP client runs on threads of the callbacks' own small pool (a slow listener cannot hold up the
threads data files and blobs use), each attempt within one deadline, and follows no redirects.
Only the web layer may use aiohttp.

A callback goes only where the operator allows: a public address, or a host or network listed in
``spark.jobserver.callback.allowed-hosts``. The server itself, loopback, link-local (a cloud's
metadata service) and private networks are refused unless listed, at submission (400) and again
before each attempt (a name may resolve elsewhere by then).

A large result (one that arrived in chunks) is posted chunk by chunk (``StreamedBody``, chunked
transfer): the attempt's thread takes each chunk from the event loop as it sends.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog

from jobserver.common.errors import BadRequest
from jobserver.common.records import JobRecord
from jobserver.common.states import JobState
from jobserver.storage.results import Result, ResultStream

log = structlog.get_logger(__name__)


CALLBACK_THREADS = 4
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    attempts: int
    retry_interval_s: float
    timeout_s: float  # for each attempt, all of it


class CallbackTargets:
    """Which callback URLs may be called: see the module's docstring."""

    def __init__(self, allowed_hosts: Sequence[str]) -> None:
        self._names = frozenset(host.lower() for host in allowed_hosts if not _network(host))
        self._networks: tuple[_Network, ...] = tuple(
            network for host in allowed_hosts if (network := _network(host)) is not None
        )

    async def check(self, url: str) -> None:
        """BadRequest when ``url`` may not be called."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadRequest("Callback Url has to be 'http'/'https'")
        host = parts.hostname.lower()
        if host in self._names:
            return
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            found = await asyncio.get_running_loop().getaddrinfo(host, port)
        except (OSError, ValueError) as error:
            raise BadRequest(f"Callback Url host {host} cannot be resolved: {error}") from None
        for address in {str(info[4][0]) for info in found}:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global and not any(ip in network for network in self._networks):
                raise BadRequest(
                    f"Callback Url host {host} is {ip}, a private, loopback or link-local address"
                    " (spark.jobserver.callback.allowed-hosts lists those that may be called)"
                )


def _network(host: str) -> _Network | None:
    try:
        return ipaddress.ip_network(host, strict=False)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class StreamedBody:
    """A callback body around a large result: ``head``, the result's chunks, ``tail``."""

    head: bytes
    result: ResultStream
    tail: bytes = b"}"


CallbackBody = bytes | StreamedBody


def callback_body(job: JobRecord, result_json: Result | None) -> CallbackBody | None:
    """What the callback says about ``job``, or None when it gets no callback."""
    if job.state is JobState.FINISHED:
        head = json.dumps({"jobId": job.id}, separators=(",", ":")).encode()[:-1] + b',"result":'
        if isinstance(result_json, ResultStream):
            return StreamedBody(head, result_json)
        return head + (result_json or b"null") + b"}"
    if job.state is JobState.ERROR:
        body = {"jobId": job.id, "status": "ERROR", "result": dict(job.error or {})}
        return json.dumps(body, separators=(",", ":")).encode()
    return None


class Outcome(enum.Enum):
    DELIVERED = "delivered"  # the receiver answered 2xx or 3xx
    REFUSED = "refused"  # the URL may not be called (any more): no further attempt
    FAILED = "failed"  # worth another attempt


async def post_callback(
    url: str,
    body: CallbackBody,
    job_id: str,
    attempt: int,
    policy: CallbackPolicy,
    targets: CallbackTargets,
    threads: ThreadPoolExecutor,
) -> Outcome:
    """One attempt: POST ``body`` to ``url``, if it may still be called, within the policy's timeout."""
    try:
        await targets.check(url)
        loop = asyncio.get_running_loop()
        data = body if isinstance(body, bytes) else _blocking_chunks(body, loop)
        status = await asyncio.wait_for(
            loop.run_in_executor(threads, _post, url, data, policy.timeout_s), policy.timeout_s
        )
    except BadRequest as refused:
        log.error("callback_refused", job_id=job_id, reason=refused.message)
        return Outcome.REFUSED
    except (OSError, urllib.error.URLError, TimeoutError) as error:
        reason = str(error) or type(error).__name__
    else:
        reason = f"HTTP {status}"
        if status < 400:
            log.info("callback_delivered", job_id=job_id, attempt=attempt)
            return Outcome.DELIVERED
    log.warning("callback_failed", job_id=job_id, attempt=attempt, reason=reason)
    return Outcome.FAILED


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the receiver's answer, not a new place to post to."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def _blocking_chunks(body: StreamedBody, loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """The body's bytes for the attempt's thread, each chunk read on the event loop."""
    yield body.head
    chunks = body.result.chunks()
    while (data := asyncio.run_coroutine_threadsafe(_next_chunk(chunks), loop).result()) is not None:
        yield data
    yield body.tail


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes | None:
    return await anext(chunks, None)


def _post(url: str, body: bytes | Iterator[bytes], timeout_s: float) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
