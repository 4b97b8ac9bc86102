"""One exception hierarchy for everything the server answers with an error.

Each class carries the HTTP status and spark-jobserver's status label; the web layer's one error
middleware renders them into the contract's envelope (sjs-contract §1.3):
``{"status": LABEL, "result": message}`` or, with an error map,
``{"status": LABEL, "result": {"message", "errorClass", "stack"}}``.
Domain code raises these and never an aiohttp exception.
"""

from __future__ import annotations

from typing import Any

# The error map is defined with the protocol because drivers build it too; re-exported here.
from driver.protocol import error_map as error_map

ErrorMap = dict[str, str]


class JobServerError(Exception):
    http_status = 500
    label = "ERROR"

    def __init__(self, message: str, *, details: ErrorMap | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def envelope(self) -> dict[str, Any]:
        return {"status": self.label, "result": self.details if self.details is not None else self.message}

    def headers(self) -> list[tuple[str, str]]:
        """Headers the answer carries besides the envelope (a name may come more than once)."""
        return []


class BadRequest(JobServerError):
    http_status = 400


class NotFound(JobServerError):
    http_status = 404


class Unauthorized(JobServerError):
    """No credentials, or credentials that do not prove who the caller is: 401 with a challenge for
    each way the server accepts (``WWW-Authenticate``)."""

    http_status = 401

    def __init__(self, message: str, *, challenges: tuple[str, ...]) -> None:
        super().__init__(message)
        self.challenges = challenges

    def headers(self) -> list[tuple[str, str]]:
        return [("WWW-Authenticate", challenge) for challenge in self.challenges]


class Forbidden(JobServerError):
    http_status = 403


class Conflict(JobServerError):
    http_status = 409


class UnsupportedMediaType(JobServerError):
    http_status = 415


class PayloadTooLarge(JobServerError):
    http_status = 413


class NoSlotsAvailable(JobServerError):
    http_status = 503
    label = "NO SLOTS AVAILABLE"


class StoreUnavailable(JobServerError):
    """The metadata store cannot be reached; the request may be retried later."""

    http_status = 503


class ValidationFailed(JobServerError):
    http_status = 400
    label = "VALIDATION FAILED"


class JobLoadingFailed(JobServerError):
    http_status = 400
    label = "JOB LOADING FAILED"


class JobLoadingMalformedUrl(JobServerError):
    http_status = 400
    label = "JOB LOADING FAILED: Malformed URL"


class ContextInitError(JobServerError):
    http_status = 500
    label = "CONTEXT INIT ERROR"


class ConfigError(Exception):
    """The server's own configuration is wrong; raised at start-up only."""


class AuthenticationUnavailable(JobServerError):
    """The service that checks credentials (LDAP, the identity provider's keys) cannot be reached:
    the caller may be who it says, so this is no 401."""

    http_status = 503


class ServedByPeer(JobServerError):
    """The context runs on another server sharing the metadata store (``server_id``, reachable at
    ``url``): the web layer forwards the request there and answers what that server answers. Seen
    by a client only when the forward itself fails."""

    http_status = 502

    def __init__(self, message: str, *, server_id: str, url: str) -> None:
        super().__init__(message)
        self.server_id = server_id
        self.url = url


class PeerUnavailable(JobServerError):
    """The context's server went silent and no server has taken it over yet (or cannot)."""

    http_status = 503
