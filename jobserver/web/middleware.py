"""Cross-cutting HTTP behaviour: the error envelope, CORS and the ``_method`` override."""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from jobserver.errors import JobServerError
from jobserver.web.render import json_response

log = structlog.get_logger(__name__)

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
CORS_ALLOWED_METHODS = "GET, POST, PUT, DELETE, HEAD, OPTIONS"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our errors become the contract's envelope; anything unexpected is logged once, never shown."""
    try:
        return await handler(request)
    except JobServerError as error:
        return json_response(error.envelope(), error.http_status)
    except web.HTTPException:
        raise
    except Exception:
        reference = uuid.uuid4().hex[:12]
        log.exception("request_failed", method=request.method, path=request.path, reference=reference)
        message = f"Internal error (reference {reference}); the server log has the details"
        return json_response({"status": "ERROR", "result": message}, 500)


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin is None:
        return await handler(request)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=200)
        response.headers["Access-Control-Allow-Methods"] = CORS_ALLOWED_METHODS
        requested = request.headers.get("Access-Control-Request-Headers")
        if requested:
            response.headers["Access-Control-Allow-Headers"] = requested
        response.headers["Access-Control-Max-Age"] = "1800"
    else:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            response = error
            _allow(response, origin)
            raise
    _allow(response, origin)
    return response


def _allow(response: web.StreamResponse, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"


@web.middleware
async def method_override(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``?_method=DELETE`` replaces the request's method before routing (sjs-contract §1.9)."""
    override = request.query.get("_method")
    if override is None:
        return await handler(request)
    method = override.upper()
    if method not in KNOWN_METHODS:
        raise web.HTTPNotImplemented(text=f"Unsupported HTTP method {override}")
    if method == request.method:
        return await handler(request)
    rerouted = request.clone(method=method)
    match_info = await request.app.router.resolve(rerouted)
    match_info.add_app(request.app)
    match_info.freeze()
    # aiohttp resolves the route before middlewares run; there is no public way to re-route.
    rerouted._match_info = match_info  # type: ignore[attr-defined]
    return await match_info.handler(rerouted)
