from __future__ import annotations

from aiohttp import web

from jobserver.web.keys import SERVER
from jobserver.web.params import flag
from jobserver.web.render import json_response, success

routes = web.RouteTableDef()


@routes.get("/data")
@routes.get("/data/")
async def list_data_files(request: web.Request) -> web.Response:
    return json_response(request.app[SERVER].data.list())


@routes.post("/data/{prefix}")
async def upload_data_file(request: web.Request) -> web.Response:
    stored = await request.app[SERVER].data.store(
        request.match_info["prefix"], request.content.iter_chunked(256 * 1024)
    )
    return json_response({"result": {"filename": stored}})


@routes.delete("/data/{filename:.+}")
async def delete_data_file(request: web.Request) -> web.Response:
    request.app[SERVER].data.delete(request.match_info["filename"])
    # The original answers a bare OK here; a JSON envelope is what clients can parse.
    return success()


@routes.put("/data")
async def reset_data(request: web.Request) -> web.Response:
    if "reset" not in request.query:
        raise web.HTTPNotFound(text="Request is missing required query parameter 'reset'")
    if request.query["reset"] != "reboot":
        return json_response({"status": "ERROR", "result": "ERROR"}, 400)
    sync = flag(request.query, "sync", True)
    request.app[SERVER].data.reset()
    return success("Data reset" if sync else "Data reset requested")
