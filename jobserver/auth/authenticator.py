"""From a request's credentials to an Identity, with a login cache.

Checking a password (bcrypt, an LDAP bind) or a token (a signature, maybe a key-set fetch) takes
milliseconds to seconds; the answer for the same credentials is remembered for
``spark.jobserver.auth.cache.time-to-live`` (a token's never beyond its expiry), keyed by a hash of
the credentials, so that a client sending the same Authorization header on every request pays a
dictionary lookup. Failures are not remembered. Checks run on the authenticator's own few threads,
so that a burst of wrong passwords cannot take the threads that blob and data-file I/O use.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import structlog

from jobserver.auth.identity import Identity, Permissions
from jobserver.auth.ldap import LdapDirectory
from jobserver.auth.oidc import BearerTokens, InvalidToken
from jobserver.auth.users_file import UsersFile
from jobserver.common.errors import Unauthorized
from jobserver.common.security_settings import AuthSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")

# akka-http's texts, which spark-jobserver answered with.
NO_CREDENTIALS = "The resource requires authentication, which was not supplied with the request"
BAD_CREDENTIALS = "The supplied authentication is invalid"
_CHECK_THREADS = 4


@dataclass(frozen=True, slots=True)
class _Login:
    identity: Identity
    expires_at: float  # time.monotonic()
    generation: int  # the users file's, for logins it checked; 0 otherwise


class Authenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._mechanisms = frozenset(settings.mechanisms)
        self._permissions = Permissions(settings)
        self._users = (
            UsersFile(settings.users_file) if settings.users_file and "basic" in self._mechanisms else None
        )
        self._directory = LdapDirectory(settings.ldap) if settings.ldap else None
        self._tokens = BearerTokens(settings.oidc) if settings.oidc else None
        self._logins: collections.OrderedDict[bytes, _Login] = collections.OrderedDict()
        self._executor = ThreadPoolExecutor(max_workers=_CHECK_THREADS, thread_name_prefix="auth")
        challenges = []
        if self._users is not None or self._directory is not None:
            challenges.append(f'Basic realm="{settings.realm}", charset="UTF-8"')
        if self._tokens is not None:
            challenges.append(f'Bearer realm="{settings.realm}"')
        self._challenges = tuple(challenges)

    @property
    def permissions(self) -> Permissions:
        return self._permissions

    async def identify(self, authorization: str | None, certificate_name: str | None = None) -> Identity:
        """Who sent these credentials; Unauthorized (401) when they prove nothing."""
        if authorization:
            key = hashlib.sha256(authorization.encode("utf-8", "surrogateescape")).digest()
            login = self._logins.get(key)
            if login is not None and self._still_valid(login):
                self._logins.move_to_end(key)
                return login.identity
            login = await self._check(authorization)
            self._remember(key, login)
            return login.identity
        if certificate_name is not None and "certificate" in self._mechanisms:
            return self._permissions.identity(certificate_name, (), "certificate")
        raise Unauthorized(NO_CREDENTIALS, challenges=self._challenges)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _still_valid(self, login: _Login) -> bool:
        if time.monotonic() >= login.expires_at:
            return False
        return not login.generation or self._users is None or login.generation == self._users.refresh()

    def _remember(self, key: bytes, login: _Login) -> None:
        if self._settings.cache_ttl_s <= 0:
            return
        self._logins[key] = login
        while len(self._logins) > self._settings.cache_max_entries:
            self._logins.popitem(last=False)

    async def _check(self, authorization: str) -> _Login:
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and (self._users is not None or self._directory is not None):
            name, password = self._basic_credentials(credentials)
            return await self._check_password(name, password)
        if scheme == "bearer" and self._tokens is not None:
            return await self._check_token(credentials.strip())
        raise Unauthorized(BAD_CREDENTIALS, challenges=self._challenges)

    def _basic_credentials(self, credentials: str) -> tuple[str, str]:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized(BAD_CREDENTIALS, challenges=self._challenges) from None
        name, colon, password = decoded.partition(":")
        if not colon or not name:
            raise Unauthorized(BAD_CREDENTIALS, challenges=self._challenges)
        return name, password

    async def _check_password(self, name: str, password: str) -> _Login:
        ttl_s = self._settings.cache_ttl_s
        if self._users is not None:
            generation = self._users.refresh()
            groups = await self._off_loop(self._users.check, name, password)
            if groups is not None:
                identity = self._permissions.identity(name, groups, "basic")
                return _Login(identity, time.monotonic() + ttl_s, generation)
        if self._directory is not None:
            groups = await self._off_loop(self._directory.login, name, password)
            if groups is not None:
                return _Login(self._permissions.identity(name, groups, "ldap"), time.monotonic() + ttl_s, 0)
        log.info("login_refused", user=name)
        raise Unauthorized(BAD_CREDENTIALS, challenges=self._challenges)

    async def _check_token(self, token: str) -> _Login:
        assert self._tokens is not None
        try:
            claims = await self._off_loop(self._tokens.check, token)
        except InvalidToken as error:
            log.info("token_refused", reason=str(error))
            challenge = f'Bearer realm="{self._settings.realm}", error="invalid_token"'
            challenges = tuple(challenge if c.startswith("Bearer") else c for c in self._challenges)
            raise Unauthorized(BAD_CREDENTIALS, challenges=challenges) from None
        lifetime_s = min(self._settings.cache_ttl_s, claims.expires_at - time.time())
        identity = self._permissions.identity(claims.name, claims.groups, "oidc")
        return _Login(identity, time.monotonic() + lifetime_s, 0)

    async def _off_loop(self, check: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, check, *args)
