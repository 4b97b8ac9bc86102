"""Bearer tokens from an OpenID Connect provider: a JWT signed by one of the provider's published
keys (JWKS, fetched and cached by PyJWT), for this server's audience, from the configured issuer,
not expired. Blocking (the key set is fetched over HTTP when a token names an unknown key);
callers run it off the event loop and cache the outcome until the token expires."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
import structlog

from jobserver.common.errors import AuthenticationUnavailable
from jobserver.common.security_settings import OidcSettings

log = structlog.get_logger(__name__)

_JWKS_LIFESPAN_S = 300


class InvalidToken(Exception):
    """The token proves nothing: badly formed, unknown key, bad signature, expired, wrong audience."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    name: str
    groups: frozenset[str]
    expires_at: float  # epoch seconds


class BearerTokens:
    def __init__(self, settings: OidcSettings) -> None:
        self._settings = settings
        self._keys = jwt.PyJWKClient(
            settings.jwks_url, cache_keys=True, lifespan=_JWKS_LIFESPAN_S, timeout=10
        )

    def check(self, token: str) -> TokenClaims:
        settings = self._settings
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(settings.algorithms),
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as error:
            log.warning("jwks_unavailable", url=settings.jwks_url, error=str(error))
            raise AuthenticationUnavailable("The identity provider's keys cannot be fetched") from error
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as error:
            raise InvalidToken(str(error)) from error
        name = _claim(claims, settings.username_claim)
        if not isinstance(name, str) or not name:
            raise InvalidToken(f"the token has no {settings.username_claim} claim")
        groups = _claim(claims, settings.groups_claim) if settings.groups_claim else None
        if isinstance(groups, str):
            groups = [groups]
        return TokenClaims(
            name=name,
            groups=frozenset(str(group) for group in groups or () if isinstance(group, str | int)),
            expires_at=float(claims["exp"]),
        )


def _claim(claims: dict[str, Any], path: str) -> Any:
    current: Any = claims
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current
