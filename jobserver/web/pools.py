"""GET /pools: the warm driver pools, how many drivers each has idle, busy and on their way."""

from __future__ import annotations

from aiohttp import web

from jobserver.web.keys import SERVER
from jobserver.web.render import json_response

routes = web.RouteTableDef()


@routes.get("/pools")
async def list_pools(request: web.Request) -> web.Response:
    return json_response(request.app[SERVER].contexts.pools.status())
