"""The aiohttp application: one factory, one route table, start-up and shut-down in order."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from jobserver.auth.authenticator import Authenticator
from jobserver.common.clock import Clock
from jobserver.common.config import Settings
from jobserver.server import JobServer
from jobserver.web import (
    binaries,
    clusters,
    console,
    contexts,
    data,
    health,
    jobs,
    metrics,
    openapi,
    pools,
    schedules,
    workflows,
)
from jobserver.web.access import Access
from jobserver.web.keys import ACCESS, SERVER
from jobserver.web.middleware import conventions
from jobserver.web.peers import PeerRequests


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """The application; ConfigError when the authentication settings cannot work. ``clock``:
    the scheduler's (tests move it on)."""
    access = Access(Authenticator(settings.auth)) if settings.auth.enabled else None
    peers = PeerRequests(settings)
    app = web.Application(
        middlewares=[
            conventions(settings.cors_allowed_origins, access, peers, access_log=settings.access_log)
        ],
        client_max_size=settings.max_upload_bytes,
    )
    if access is not None:
        app[ACCESS] = access
    for module in (binaries, clusters, contexts, jobs, data, health, metrics, openapi, pools, console):
        app.router.add_routes(module.routes)
    for module in (schedules, workflows):
        app.router.add_routes(module.routes)

    async def job_server(app: web.Application) -> AsyncIterator[None]:
        # Recovery of what the store believed alive happens inside start(), before serving.
        app[SERVER] = await JobServer.start(settings, clock=clock, peer_call=peers.call)
        yield
        await app[SERVER].stop()
        await peers.close()
        if access is not None:
            access.close()

    app.cleanup_ctx.append(job_server)
    return app
