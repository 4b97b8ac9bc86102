from __future__ import annotations

from aiohttp import web

from jobserver.common.config import expand_dotted, get_path, merge
from jobserver.common.errors import JobServerError
from jobserver.web.access import caller
from jobserver.web.keys import ACCESS, SERVER
from jobserver.web.params import config_body, flag, number
from jobserver.web.peers import PeerRequests
from jobserver.web.render import context_info, json_response, log_page, success

routes = web.RouteTableDef()

# Query parameters that steer the request itself and are not context settings.
_REQUEST_PARAMETERS = frozenset({"_method", "force"})
PROXY_USER_PARAMETER = "spark.proxy.user"
MAX_LOG_LINE = 2**31 - 1


@routes.get("/contexts")
@routes.get("/contexts/")
async def list_contexts(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVER].contexts.list_names())


@routes.get("/contexts/{name}")
async def get_context(request: web.Request) -> web.Response:
    contexts = request.app[SERVER].contexts
    record = await contexts.get(request.match_info["name"])
    info = context_info(record)
    stuck = contexts.stuck_job_ids(record.id)
    if stuck:  # killed jobs whose code ignores the kill (spark.jobserver.kill-grace)
        info["stuckJobs"] = stuck
    return json_response(info)


@routes.get("/contexts/{name}/logs")
async def get_context_logs(request: web.Request) -> web.Response:
    """The driver's log of the newest context of that name, in Livy's shape."""
    page = await request.app[SERVER].context_logs.page(
        request.match_info["name"],
        number(request.query, "from", maximum=MAX_LOG_LINE),
        number(request.query, "size", maximum=MAX_LOG_LINE),
    )
    return json_response(log_page(page))


@routes.get("/contexts/{name}/objects")
async def list_named_objects(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVER].contexts.named_objects(request.match_info["name"]))


@routes.post("/contexts/{name}")
async def create_context(request: web.Request) -> web.Response:
    server = request.app[SERVER]
    parameters = {key: value for key, value in request.query.items() if key not in _REQUEST_PARAMETERS}
    run_as = None
    access = request.app.get(ACCESS)
    if access is not None:  # the authentication decides whom the driver runs as
        run_as = access.run_as(request, parameters.pop(PROXY_USER_PARAMETER, None))
    body = await config_body(request)
    # Body settings win over query parameters, which win over the server's defaults (§2.2).
    settings = merge(expand_dotted(parameters), get_path(body, "spark.context-settings", {}) or {})
    await server.contexts.create(
        request.match_info["name"], settings, caller=caller(request), proxy_user=run_as
    )
    return success("Context initialized")


@routes.delete("/contexts/{name}")
async def delete_context(request: web.Request) -> web.Response:
    force = flag(request.query, "force", False)
    ended = await request.app[SERVER].contexts.delete(
        request.match_info["name"], force=force, caller=caller(request)
    )
    if not ended:  # the stop goes on in the background
        return web.Response(status=202, headers={"Location": str(request.url)})
    return success("Context stopped")


@routes.put("/contexts")
@routes.put("/contexts/{tail:.*}")
async def reset_contexts(request: web.Request) -> web.Response:
    if "reset" not in request.query:
        raise web.HTTPNotFound(text="Request is missing required query parameter 'reset'")
    if request.query["reset"] != "reboot":
        raise JobServerError("ERROR")
    sync = flag(request.query, "sync", True)
    # A client's reset reaches the peer servers' contexts too; a peer's forwarded one is its own.
    await request.app[SERVER].contexts.reset(
        sync=sync, caller=caller(request), peers_too=not PeerRequests.is_forwarded(request)
    )
    return success("Context reset" if sync else "Context reset requested")
