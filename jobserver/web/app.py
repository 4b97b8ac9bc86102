"""The aiohttp application: one factory, one route table, start-up and shut-down in order."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from jobserver.common.config import Settings
from jobserver.server import JobServer
from jobserver.web import binaries, contexts, data, health, jobs
from jobserver.web.keys import SERVER
from jobserver.web.middleware import conventions


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[conventions(settings.cors_allowed_origins)],
        client_max_size=settings.max_upload_bytes,
    )
    for module in (binaries, contexts, jobs, data, health):
        app.router.add_routes(module.routes)

    async def job_server(app: web.Application) -> AsyncIterator[None]:
        # Recovery of what the store believed alive happens inside start(), before serving.
        app[SERVER] = await JobServer.start(settings)
        yield
        await app[SERVER].stop()

    app.cleanup_ctx.append(job_server)
    return app
