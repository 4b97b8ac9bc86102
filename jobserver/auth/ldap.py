"""HTTP Basic checked by the directory: a simple bind as the user (its DN from a template, or found
by a search), then, if configured, a search for the groups the user is a member of. Blocking (ldap3's
synchronous strategy, one connection per login); callers run it off the event loop and cache the
outcome."""

from __future__ import annotations

import math
from typing import Any

import ldap3
import structlog
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from jobserver.common.errors import AuthenticationUnavailable
from jobserver.common.security_settings import LdapSettings

log = structlog.get_logger(__name__)


class LdapDirectory:
    def __init__(self, settings: LdapSettings) -> None:
        self._settings = settings
        # ldap3 takes whole seconds (it packs them into socket options).
        self._timeout_s = max(1, math.ceil(settings.timeout_s))
        self._server = ldap3.Server(settings.url, connect_timeout=self._timeout_s, get_info=ldap3.NONE)

    def login(self, name: str, password: str) -> frozenset[str] | None:
        """The user's groups when the directory accepts the password, else None."""
        if not name or not password:
            # An empty password is an unauthenticated bind, which directories accept for anyone.
            return None
        settings = self._settings
        try:
            service = self._service_connection()
            try:
                dn = self._user_dn(service, name)
                if dn is None:
                    return None
                user = self._connection(dn, password)
                try:
                    if not user.bind():
                        log.info("ldap_login_refused", user=name, result=user.result.get("description"))
                        return None
                    if not settings.group_search_base:
                        return frozenset()
                    return self._groups(service or user, dn, name)
                finally:
                    user.unbind()
            finally:
                if service is not None:
                    service.unbind()
        except LDAPException as error:
            log.warning("ldap_unavailable", url=settings.url, error=str(error))
            raise AuthenticationUnavailable("The directory that checks passwords is unreachable") from error

    def _connection(self, dn: str | None, password: str | None) -> ldap3.Connection:
        return ldap3.Connection(
            self._server,
            user=dn,
            password=password,
            authentication=ldap3.SIMPLE if dn else ldap3.ANONYMOUS,
            receive_timeout=self._timeout_s,
            read_only=True,
            raise_exceptions=False,
        )

    def _service_connection(self) -> ldap3.Connection | None:
        settings = self._settings
        if not settings.bind_dn:
            return None
        service = self._connection(settings.bind_dn, settings.bind_password)
        if not service.bind():
            raise LDAPException(f"the service account {settings.bind_dn} cannot bind")
        return service

    def _user_dn(self, service: ldap3.Connection | None, name: str) -> str | None:
        settings = self._settings
        if settings.user_dn_template:
            return settings.user_dn_template.format(user=escape_rdn(name))
        searcher = service or self._connection(None, None)
        if service is None and not searcher.bind():
            raise LDAPException("an anonymous bind to search for the user was refused")
        try:
            searcher.search(
                settings.user_search_base,
                settings.user_search_filter.format(user=escape_filter_chars(name)),
                search_scope=ldap3.SUBTREE,
                attributes=[],
                size_limit=2,
            )
            found = [entry["dn"] for entry in _entries(searcher)]
        finally:
            if service is None:
                searcher.unbind()
        return found[0] if len(found) == 1 else None  # none, or not one user: no login

    def _groups(self, connection: ldap3.Connection, dn: str, name: str) -> frozenset[str]:
        settings = self._settings
        attribute = settings.group_name_attribute
        connection.search(
            settings.group_search_base,
            settings.group_search_filter.format(dn=escape_filter_chars(dn), user=escape_filter_chars(name)),
            search_scope=ldap3.SUBTREE,
            attributes=[attribute],
        )
        groups: set[str] = set()
        for entry in _entries(connection):
            value = entry.get("attributes", {}).get(attribute)
            groups.update(str(item) for item in (value if isinstance(value, list) else [value]) if item)
        return frozenset(groups)


def _entries(connection: ldap3.Connection) -> list[dict[str, Any]]:
    return [entry for entry in connection.response or [] if entry.get("type") == "searchResEntry"]
