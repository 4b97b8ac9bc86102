"""``GET /clusters``: the clusters this server submits to (``spark.jobserver.clusters``), each
with its master, deploy mode, Kerberos principal and the names of its contexts."""

from __future__ import annotations

from aiohttp import web

from jobserver.web.keys import SERVER
from jobserver.web.render import json_response

routes = web.RouteTableDef()


@routes.get("/clusters")
async def list_clusters(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVER].contexts.clusters())
