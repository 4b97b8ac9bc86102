"""An authenticated caller and what it may do, by spark-jobserver's permission identifiers
(sjs-contract §7.5): ``*`` allows everything, a resource (``jobs``) all of its actions, and an
action (``jobs:start``) itself alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jobserver.common.errors import ConfigError, Forbidden
from jobserver.common.security_settings import AuthSettings

ALLOW_ALL = "*"
ACTIONS = {
    "binaries": ("read", "upload", "delete"),
    "contexts": ("read", "start", "delete", "reset"),
    "jobs": ("read", "start", "delete"),
    "data": ("read", "upload", "delete", "reset"),
    "schedules": ("read", "write"),
    "workflows": ("read", "start", "delete"),
}
PERMISSIONS = frozenset(
    {
        ALLOW_ALL,
        *ACTIONS,
        *(f"{resource}:{action}" for resource, actions in ACTIONS.items() for action in actions),
    }
)


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    groups: frozenset[str]
    permissions: frozenset[str]
    # whom it may name as spark.proxy.user besides itself (* : anyone)
    impersonates: frozenset[str]
    mechanism: str

    def may(self, permission: str) -> bool:
        held = self.permissions
        return ALLOW_ALL in held or permission in held or permission.partition(":")[0] in held

    def may_act_as(self, user: str) -> bool:
        """Whether it may run work as ``user`` (a context's proxy user)."""
        return user == self.name or ALLOW_ALL in self.impersonates or user in self.impersonates

    def acts_as(self) -> frozenset[str]:
        """The users it may run work as; ``*`` among them when anyone."""
        if ALLOW_ALL in self.permissions:
            return frozenset({ALLOW_ALL})
        return self.impersonates | {self.name}


class Permissions:
    """Maps a user and its groups to permissions and impersonation rights, from the settings."""

    def __init__(self, settings: AuthSettings) -> None:
        for section, mapping in (
            ("users", settings.user_permissions),
            ("groups", settings.group_permissions),
        ):
            for name, permissions in mapping.items():
                _check(permissions, f"spark.jobserver.auth.permissions.{section}.{name}")
        _check(settings.default_permissions, "spark.jobserver.auth.permissions.default")
        self._settings = settings

    def identity(self, name: str, groups: Iterable[str], mechanism: str) -> Identity:
        settings = self._settings
        group_set = frozenset(groups)
        permissions = _union(name, group_set, settings.user_permissions, settings.group_permissions)
        impersonates = _union(name, group_set, settings.user_impersonation, settings.group_impersonation)
        return Identity(
            name=name,
            groups=group_set,
            # spark-jobserver: a user mapped to no permission gets the default (everything)
            permissions=permissions or frozenset(settings.default_permissions),
            impersonates=impersonates,
            mechanism=mechanism,
        )

    def proxy_user(self, identity: Identity, requested: str | None) -> str | None:
        """The user a context started by ``identity`` runs as: ``requested`` (a client's
        ``spark.proxy.user``) when it may act as that user, itself in proxy-user mode, else none
        (the server's own user)."""
        if requested is not None and requested.strip():
            if not identity.may_act_as(requested):
                raise Forbidden(f"User {identity.name} may not run contexts as {requested}")
            return requested
        return identity.name if self._settings.proxy_user else None


def _union(
    name: str,
    groups: frozenset[str],
    by_user: Mapping[str, tuple[str, ...]],
    by_group: Mapping[str, tuple[str, ...]],
) -> frozenset[str]:
    found = set(by_user.get(name, ()))
    for group in groups:
        found.update(by_group.get(group, ()))
    return frozenset(found)


def _check(permissions: Iterable[str], key: str) -> None:
    unknown = sorted(set(permissions) - PERMISSIONS)
    if unknown:
        raise ConfigError(
            f"{key}: unknown permission {', '.join(unknown)} (known: {', '.join(sorted(PERMISSIONS))})"
        )
