"""Who may call which route: every route's permission (spark-jobserver's identifiers,
sjs-contract §7.5), checked for the authenticated caller before its handler runs.

A route missing from the table needs ``*``, so that a new route is never open by mistake (a test
checks that every route is listed). Unmatched paths need a login but no permission (their 404 or
405 tells nothing to a caller who cannot log in).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobserver.auth.authenticator import Authenticator
from jobserver.auth.identity import ALLOW_ALL, Identity
from jobserver.common.errors import Forbidden
from jobserver.common.records import Caller

OPEN = ""  # no login needed

# (method, route's canonical path) → permission
ROUTE_PERMISSIONS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/healthz/{tail}"): OPEN,
    ("GET", "/openapi.json"): OPEN,  # the API's description, as public as README.md
    ("GET", "/docs"): OPEN,
    ("GET", "/metrics"): "metrics:read",
    ("GET", "/"): OPEN,  # the web console's files: no data; the API they call needs a login
    ("GET", "/console/{name}"): OPEN,
    ("GET", "/binaries"): "binaries:read",
    ("GET", "/binaries/"): "binaries:read",
    ("GET", "/binaries/{name}"): "binaries:read",
    ("POST", "/binaries/{name}"): "binaries:upload",
    ("DELETE", "/binaries/{name}"): "binaries:delete",
    ("GET", "/clusters"): "contexts:read",
    ("GET", "/contexts"): "contexts:read",
    ("GET", "/contexts/"): "contexts:read",
    ("GET", "/contexts/{name}"): "contexts:read",
    ("GET", "/contexts/{name}/objects"): "contexts:read",
    ("GET", "/contexts/{name}/logs"): "contexts:read",
    ("POST", "/contexts/{name}"): "contexts:start",
    ("DELETE", "/contexts/{name}"): "contexts:delete",
    ("PUT", "/contexts"): "contexts:reset",
    ("PUT", "/contexts/{tail}"): "contexts:reset",
    ("GET", "/pools"): "contexts:read",
    ("GET", "/jobs"): "jobs:read",
    ("GET", "/jobs/"): "jobs:read",
    ("GET", "/jobs/{job_id}"): "jobs:read",
    ("GET", "/jobs/{job_id}/config"): "jobs:read",
    ("GET", "/jobs/{job_id}/logs"): "jobs:read",
    ("GET", "/jobs/{job_id}/events"): "jobs:read",
    ("POST", "/jobs"): "jobs:start",
    ("DELETE", "/jobs/{job_id}"): "jobs:delete",
    ("GET", "/data"): "data:read",
    ("GET", "/data/"): "data:read",
    ("POST", "/data/{prefix}"): "data:upload",
    ("DELETE", "/data/{filename}"): "data:delete",
    ("PUT", "/data"): "data:reset",
    ("GET", "/schedules"): "schedules:read",
    ("GET", "/schedules/{name}"): "schedules:read",
    ("GET", "/schedules/{name}/runs"): "schedules:read",
    ("POST", "/schedules"): "schedules:write",
    ("PUT", "/schedules/{name}"): "schedules:write",
    ("DELETE", "/schedules/{name}"): "schedules:write",
    ("POST", "/schedules/{name}/pause"): "schedules:write",
    ("POST", "/schedules/{name}/resume"): "schedules:write",
    ("GET", "/workflows"): "workflows:read",
    ("GET", "/workflows/{workflow_id}"): "workflows:read",
    ("POST", "/workflows"): "workflows:start",
    ("DELETE", "/workflows/{workflow_id}"): "workflows:delete",
}

NOT_PERMITTED = "The supplied authentication is not authorized to access this resource"

IDENTITY = web.RequestKey("identity", Identity)
# The caller of a request a peer server forwarded (it checked the login and the permission).
FORWARDED_CALLER = web.RequestKey("forwarded_caller", Caller)


class Access:
    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def admit(self, request: web.Request) -> None:
        """Let the request through to its handler, knowing who sent it, or raise 401 / 403."""
        resource = request.match_info.route.resource
        method = "GET" if request.method == "HEAD" else request.method
        needed = ROUTE_PERMISSIONS.get((method, resource.canonical), ALLOW_ALL) if resource else None
        if needed == OPEN:
            return
        identity = await self.authenticator.identify(
            request.headers.get("Authorization"), _certificate_name(request)
        )
        if needed is not None and not identity.may(needed):
            raise Forbidden(NOT_PERMITTED)
        request[IDENTITY] = identity

    def close(self) -> None:
        self.authenticator.close()

    def run_as(self, request: web.Request, requested: str | None) -> str | None:
        """The user a context started by this request runs as (see ``Permissions.proxy_user``)."""
        return self.authenticator.permissions.proxy_user(request[IDENTITY], requested)


def caller(request: web.Request) -> Caller | None:
    """The authenticated caller, as the domain knows it; None when authentication is off."""
    identity = request.get(IDENTITY)
    if identity is None:
        return request.get(FORWARDED_CALLER)
    return Caller(user=identity.name, acts_as=identity.acts_as())


def _certificate_name(request: web.Request) -> str | None:
    """The subject CN of a client certificate the TLS layer verified."""
    transport = request.transport
    certificate: dict[str, Any] | None = transport.get_extra_info("peercert") if transport else None
    for attributes in (certificate or {}).get("subject", ()):
        for name, value in attributes:
            if name == "commonName":
                return str(value)
    return None
