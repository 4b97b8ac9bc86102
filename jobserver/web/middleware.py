"""Cross-cutting HTTP behaviour: the error envelope, CORS, the ``_method`` override, access
control (``web.access``), and each request counted, timed and (``access-log``) logged.

Requests about a context another server sharing the store runs are forwarded to it
(``web.peers``), after the login and permission check. One middleware does all of it: each
middleware is a coroutine layer that every request and every response passes through, and on
the job path a layer costs more than the work it does here.

CORS answers only the origins the configuration lists (``spark.jobserver.cors.allowed-origins``;
none by default), so that a page on another site cannot make a visitor's browser call this
server; ``_method`` is honoured on POST only (a form or a script must mean it), never on a GET that
an ``<img>`` tag can send.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
import uuid
from collections.abc import Collection

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jobserver.common import metrics
from jobserver.common.errors import BadRequest, JobServerError, ServedByPeer
from jobserver.web.access import IDENTITY, Access, caller
from jobserver.web.peers import PeerRequests
from jobserver.web.render import json_response

log = structlog.get_logger(__name__)

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
CORS_ALLOWED_METHODS = "GET, POST, PUT, DELETE, HEAD, OPTIONS"
_PREFLIGHT_HEADER = "Access-Control-Request-Method"
ANY_ORIGIN = "*"
REQUEST_ID = "X-Request-Id"


def conventions(
    allowed_origins: Collection[str],
    access: Access | None = None,
    peers: PeerRequests | None = None,
    *,
    access_log: bool = False,
) -> Middleware:
    """The middleware, for browsers on ``allowed_origins`` (``*``: any origin, without
    credentials), letting only callers ``access`` admits reach a handler (None: everyone), and
    sending requests about a context a peer runs to that peer (``peers``: forwarded requests are
    taken only with a peer's signature)."""
    origins = frozenset(allowed_origins)

    def allowed(origin: str | None) -> str | None:
        if origin is None or not origins:
            return None
        if origin in origins:
            return origin
        return ANY_ORIGIN if ANY_ORIGIN in origins else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every answer counted and timed (``/metrics``), and logged when the access log is on,
        with its request id (the client's ``X-Request-Id``, or a new one), also in the answer."""
        started = time.perf_counter()
        request_id = _request_id(request)
        status = 500
        try:
            response = await answer(request, handler)
            status = response.status
            response.headers[REQUEST_ID] = request_id
            return response
        except web.HTTPException as error:
            status = error.status
            error.headers[REQUEST_ID] = request_id
            raise
        finally:
            elapsed_s = time.perf_counter() - started
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            metrics.request_answered(request.method, route, status, elapsed_s)
            if access_log:  # written once the answer is on its way, not before it
                identity = request.get(IDENTITY)
                asyncio.get_running_loop().call_soon(
                    functools.partial(
                        log.info,
                        "request",
                        request_id=request_id,
                        user=identity.name if identity is not None else None,
                        method=request.method,
                        route=route,
                        path=request.path,
                        status=status,
                        duration_ms=round(elapsed_s * 1000, 2),
                    )
                )

    async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Our errors become the contract's envelope, and anything unexpected is logged once,
        never shown; ``?_method=`` on a POST replaces its method (sjs-contract §1.9), and the
        permission needed is the replaced method's; an allowed ``Origin`` is answered with CORS
        headers, errors included, and its preflight answered."""
        asked_by = request.headers.get("Origin")
        origin = allowed(asked_by)
        if asked_by is not None and request.method == "OPTIONS" and _PREFLIGHT_HEADER in request.headers:
            return _preflight(request, origin)
        response: web.StreamResponse
        try:
            _refuse_nul(request)
            override = request.query.get("_method") if request.method == "POST" else None
            if override is not None:
                request, handler = await _rerouted(request, handler, override)
            forwarded = peers is not None and peers.is_forwarded(request)
            if forwarded:
                assert peers is not None
                await peers.admit(request)  # the peer checked the login and the permission
            elif access is not None:
                await access.admit(request)
            try:
                response = await handler(request)
            except ServedByPeer as served:
                if forwarded or peers is None:  # never forwarded twice: the error says where it runs
                    raise
                response = await peers.forward(request, served, caller(request))
        except JobServerError as error:
            response = json_response(error.envelope(), error.http_status)
            # A script's own request (the web console's) gets no challenge: a browser would stop it
            # to ask for a password in a dialog of its own instead of letting the page ask.
            scripted = request.headers.get("X-Requested-With") == "XMLHttpRequest"
            for name, value in error.headers():
                if not (scripted and name == "WWW-Authenticate"):
                    response.headers.add(name, value)
        except web.HTTPException as error:
            if origin is not None:
                _allow(error, origin)
            raise
        except Exception:
            response = _internal_error(request)
        if origin is not None:
            _allow(response, origin)
        return response

    return middleware


def _request_id(request: web.Request) -> str:
    """The client's request id when it gave a sensible one, else a new one."""
    given = request.headers.get(REQUEST_ID, "")
    if 0 < len(given) <= 64 and given.isprintable():
        return given
    return os.urandom(8).hex()


def _refuse_nul(request: web.Request) -> None:
    """A NUL in a name or parameter is no name anyone meant (and PostgreSQL refuses it in text)."""
    if "\x00" in request.path or any("\x00" in value for value in request.query.values()):
        raise BadRequest("a NUL character is not allowed in a request's path or parameters")


def _preflight(request: web.Request, origin: str | None) -> web.Response:
    """A preflight from an origin that is not allowed gets no CORS headers: the browser stops."""
    response = web.Response(status=200)
    if origin is None:
        return response
    response.headers["Access-Control-Allow-Methods"] = CORS_ALLOWED_METHODS
    requested = request.headers.get("Access-Control-Request-Headers")
    if requested:
        response.headers["Access-Control-Allow-Headers"] = requested
    response.headers["Access-Control-Max-Age"] = "1800"
    _allow(response, origin)
    return response


def _allow(response: web.StreamResponse, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    if origin != ANY_ORIGIN:  # browsers refuse credentials with a wildcard
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"


async def _rerouted(request: web.Request, handler: Handler, override: str) -> tuple[web.Request, Handler]:
    """The request as the method ``override`` names, and the handler of its route."""
    method = override.upper()
    if method not in KNOWN_METHODS:
        raise web.HTTPNotImplemented(text=f"Unsupported HTTP method {override}")
    if method == request.method:
        return request, handler
    rerouted = request.clone(method=method)
    match_info = await request.app.router.resolve(rerouted)
    match_info.add_app(request.app)
    match_info.freeze()
    # aiohttp resolves the route before middlewares run; there is no public way to re-route.
    rerouted._match_info = match_info
    return rerouted, match_info.handler


def _internal_error(request: web.Request) -> web.Response:
    reference = uuid.uuid4().hex[:12]
    log.exception("request_failed", method=request.method, path=request.path, reference=reference)
    message = f"Internal error (reference {reference}); the server log has the details"
    return json_response({"status": "ERROR", "result": message}, 500)
