from __future__ import annotations

from aiohttp import web

from jobserver.web.keys import SERVER
from jobserver.web.render import binary_info, json_response, success

routes = web.RouteTableDef()


@routes.get("/binaries")
@routes.get("/binaries/")
async def list_binaries(request: web.Request) -> web.Response:
    binaries = await request.app[SERVER].binaries.list()
    return json_response({binary.app_name: binary_info(binary) for binary in binaries})


@routes.get("/binaries/{name}")
async def get_binary(request: web.Request) -> web.Response:
    binary = await request.app[SERVER].binaries.get(request.match_info["name"])
    return json_response({"app-name": binary.app_name, **binary_info(binary)})


@routes.post("/binaries/{name}")
async def upload_binary(request: web.Request) -> web.Response:
    media_type = request.headers.get("Content-Type", "application/octet-stream")
    await request.app[SERVER].binaries.upload(
        request.match_info["name"], media_type, request.content.iter_chunked(256 * 1024)
    )
    return success(status=201)


@routes.delete("/binaries/{name}")
async def delete_binary(request: web.Request) -> web.Response:
    await request.app[SERVER].binaries.delete(request.match_info["name"])
    return success()
