"""Requests about a context another server runs, forwarded to that server (``ServedByPeer``), and
the forwarded requests this server takes from its peers.

The server a client called checks the caller's login and the route's permission as usual, then
sends the same request (method, path and query, body, content type; not the client's credentials)
to the owner's advertised URL with four headers: who forwards it, when, the caller as the domain
knows it (``Caller``: the user and whom it may act as), and an HMAC-SHA256 over all of that and
the body's hash under a key derived from the key the servers share (``tokens.peer_signing_key``).
The owner takes a request carrying these headers only with a valid signature less than a minute
old (403 otherwise, whatever its own authentication), runs it as that caller without a login of
its own, and never forwards it again. The owner's answer goes back to the client unchanged; one
the owner sends in chunks (a large result) is passed on chunk by chunk, never held whole.

The server's own requests about a peer's context (a workflow step whose job runs in it, the kill
of that job) go the same way, signed the same (``call``), as the workflow's user.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict

from jobserver.common.config import Settings
from jobserver.common.errors import Forbidden, PeerUnavailable, ServedByPeer
from jobserver.common.records import Caller
from jobserver.drivers import tokens
from jobserver.web.access import FORWARDED_CALLER as FORWARDED_CALLER_KEY
from jobserver.web.render import json_response

log = structlog.get_logger(__name__)

FORWARDED_BY = "X-Jobserver-Forwarded-By"
FORWARDED_TIME = "X-Jobserver-Forwarded-Time"  # epoch milliseconds
FORWARDED_CALLER = "X-Jobserver-Forwarded-Caller"  # JSON, "" when the caller is anonymous
FORWARDED_SIGNATURE = "X-Jobserver-Forwarded-Signature"
FORWARDED_HEADERS = (FORWARDED_BY, FORWARDED_TIME, FORWARDED_CALLER, FORWARDED_SIGNATURE)
MAX_AGE_S = 60.0  # a forwarded request older (or younger) than this by the owner's clock is refused
# What of the client's request goes along (its credentials stay with the server that checked them).
PASSED_HEADERS = ("Content-Type", "Accept")
# What of the owner's answer does not: the connection's own business, and lengths aiohttp sets.
# How long past what the request itself may wait (a sync job's timeout, a context's stop) a peer
# may take to answer: a peer that froze must not hold the request for ever.
ANSWER_MARGIN_S = 10.0
DROPPED_ANSWER_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)


class PeerRequests:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    @functools.cached_property
    def _signing_key(self) -> bytes:
        # Read on first use: the server has created the key (and its folder) by then.
        return tokens.peer_signing_key(tokens.load_key(self._settings.key_file))

    def _signature(self, method: str, path_qs: str, *, by: str, at: str, caller: str, body: bytes) -> str:
        text = "\n".join((method, path_qs, by, at, caller, hashlib.sha256(body).hexdigest()))
        return hmac.new(self._signing_key, text.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def is_forwarded(request: web.Request) -> bool:
        return any(header in request.headers for header in FORWARDED_HEADERS)

    async def admit(self, request: web.Request) -> None:
        """A peer's forwarded request: its signature checked (403 when it is not a peer's), its
        caller taken as the peer says."""
        headers = request.headers
        by, at = headers.get(FORWARDED_BY, ""), headers.get(FORWARDED_TIME, "")
        caller_text, signature = headers.get(FORWARDED_CALLER, ""), headers.get(FORWARDED_SIGNATURE, "")
        try:
            age_s = abs(time.time() - int(at) / 1000)
        except ValueError:
            age_s = MAX_AGE_S + 1
        expected = self._signature(
            request.method, request.path_qs, by=by, at=at, caller=caller_text, body=await request.read()
        )
        if age_s > MAX_AGE_S or not hmac.compare_digest(signature, expected):
            log.warning("forwarded_request_refused", peer=by, path=request.path, age_s=round(age_s, 1))
            raise Forbidden("not a request forwarded by a peer server")
        if caller_text:
            fields = json.loads(caller_text)
            request[FORWARDED_CALLER_KEY] = Caller(user=fields["user"], acts_as=frozenset(fields["actsAs"]))

    async def forward(
        self, request: web.Request, served: ServedByPeer, caller: Caller | None
    ) -> web.Response:
        """Send the request to the server that runs its context; its answer, unchanged."""
        body = await request.read() if request.can_read_body or request.body_exists else b""
        headers = {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}
        headers.update(self._signed(request.method, request.path_qs, body, caller))
        try:
            answer = await self._client().request(
                request.method,
                served.url + request.path_qs,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._answer_within_s(request), sock_connect=10),
            )
            kept = CIMultiDict(
                (name, value)
                for name, value in answer.headers.items()
                if name.lower() not in DROPPED_ANSWER_HEADERS
            )
            if answer.content_length is None and answer.status == 200:
                return web.Response(status=answer.status, body=_relayed(answer), headers=kept)
            try:
                payload = await answer.read()
            finally:
                answer.release()
            return web.Response(status=answer.status, body=payload, headers=kept)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            log.warning("request_forward_failed", peer=served.server_id, url=served.url, error=str(error))
            reason = str(error) or f"no answer within {self._answer_within_s(request):.0f} s"
            message = f"{served.message}, which cannot be reached: {reason}"
            return json_response({"status": "ERROR", "result": message}, 502)

    async def call(
        self,
        served: ServedByPeer,
        method: str,
        path_qs: str,
        body: bytes,
        content_type: str,
        caller: Caller | None,
    ) -> tuple[int, Any]:
        """A request of this server's own (a workflow's step) to the server that runs its context,
        signed as a forwarded one, as ``caller``: the answer's status and JSON. A peer that cannot
        be reached raises PeerUnavailable."""
        headers = {"Content-Type": content_type, **self._signed(method, path_qs, body, caller)}
        timeout = aiohttp.ClientTimeout(total=self._settings.context_deletion_timeout_s + ANSWER_MARGIN_S)
        try:
            async with self._client().request(
                method, served.url + path_qs, data=body, headers=headers, timeout=timeout
            ) as answer:
                return answer.status, await answer.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
            log.warning("peer_call_failed", peer=served.server_id, url=served.url, error=str(error))
            raise PeerUnavailable(f"{served.message}, which cannot be reached: {error}") from error

    def _signed(self, method: str, path_qs: str, body: bytes, caller: Caller | None) -> dict[str, str]:
        """The headers that make a request a peer's: who, when, as whom, and their signature."""
        caller_text = (
            "" if caller is None else json.dumps({"user": caller.user, "actsAs": sorted(caller.acts_as)})
        )
        at = str(int(time.time() * 1000))
        by = self._settings.server_id
        signature = self._signature(method, path_qs, by=by, at=at, caller=caller_text, body=body)
        return {
            FORWARDED_BY: by,
            FORWARDED_TIME: at,
            FORWARDED_CALLER: caller_text,
            FORWARDED_SIGNATURE: signature,
        }

    def _answer_within_s(self, request: web.Request) -> float:
        try:
            job_timeout_s = float(request.query.get("timeout", ""))
        except ValueError:
            job_timeout_s = self._settings.default_sync_timeout_s
        waits_s = max(job_timeout_s, self._settings.context_deletion_timeout_s)
        return waits_s + ANSWER_MARGIN_S

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _relayed(answer: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """A peer's chunked answer, passed on as it arrives (a large job result)."""
    try:
        async for chunk in answer.content.iter_chunked(1 << 20):
            yield chunk
    finally:
        answer.release()
