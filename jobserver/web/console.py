"""The web console at ``/``: one HTML page, a script and a style sheet served from the package
(``jobserver/web/console/``), which call the REST API like any client. Nothing is built at
install. The files are open, like ``/docs``: they hold no data; the API they call asks for a
login (the page shows a form and sends the credentials with each call)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

routes = web.RouteTableDef()

FOLDER = Path(__file__).resolve().parent / "console"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
FILES = {path.name: path for path in FOLDER.iterdir() if path.suffix in CONTENT_TYPES}


def _file(name: str) -> web.Response:
    path = FILES.get(name)
    if path is None:
        raise web.HTTPNotFound(text=f"no console file {name}")
    return web.Response(
        body=path.read_bytes(),
        content_type=CONTENT_TYPES[path.suffix],
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@routes.get("/")
async def page(request: web.Request) -> web.Response:
    return _file("index.html")


@routes.get("/console/{name}")
async def asset(request: web.Request) -> web.Response:
    return _file(request.match_info["name"])
