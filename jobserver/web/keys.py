from __future__ import annotations

from aiohttp import web

from jobserver.server import JobServer

SERVER = web.AppKey("server", JobServer)
