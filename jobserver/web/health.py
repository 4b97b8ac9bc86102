from __future__ import annotations

from aiohttp import web

from jobserver.web.render import success

routes = web.RouteTableDef()


@routes.get("/healthz")
@routes.get("/healthz/{tail:.*}")
async def health(request: web.Request) -> web.Response:
    return success()
