from __future__ import annotations

from aiohttp import web

from jobserver.server import JobServer
from jobserver.web.access import Access

SERVER = web.AppKey("server", JobServer)
ACCESS = web.AppKey("access", Access)  # present when authentication is on
