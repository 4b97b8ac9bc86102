"""The trust boundary's settings: who may call the REST API (``spark.jobserver.auth``) and how it is
served (``spark.jobserver.tls``), read from the plain configuration into typed, checked values.

A mistake here must stop the server at start-up with the key's name (ConfigError), never leave the
API open: authentication is off only when ``mechanisms`` says ``none``, and an unknown mechanism,
a missing users file or an OIDC issuer without an audience is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobserver.common.errors import ConfigError
from jobserver.common.values import parse_bool, parse_duration_s, string_list

# Basic with a users file, Basic checked by an LDAP bind, OIDC bearer tokens, TLS client certificates.
MECHANISMS = ("basic", "ldap", "oidc", "certificate")
CLIENT_AUTH_MODES = ("none", "optional", "required")


@dataclass(frozen=True, slots=True)
class LdapSettings:
    url: str
    user_dn_template: str  # e.g. uid={user},ou=people,dc=example,dc=org; empty: search for the user
    bind_dn: str  # a service account for searches; empty: searches run as the user
    bind_password: str
    user_search_base: str
    user_search_filter: str  # {user}: the login name, escaped
    group_search_base: str
    group_search_filter: str  # {dn}: the user's DN, {user}: the login name, both escaped
    group_name_attribute: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class OidcSettings:
    jwks_url: str
    issuer: str
    audience: str
    username_claim: str  # dotted path into the token's claims
    groups_claim: str  # dotted path; a list of names, or one name
    algorithms: tuple[str, ...]
    leeway_s: float


@dataclass(frozen=True, slots=True)
class AuthSettings:
    mechanisms: tuple[str, ...]  # empty: authentication is off
    realm: str
    cache_ttl_s: float  # how long a login (or a token's check) is trusted without checking again
    cache_max_entries: int
    users_file: Path | None
    ldap: LdapSettings | None
    oidc: OidcSettings | None
    # permission identifiers by user name and by group name; what everyone else gets
    user_permissions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    group_permissions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_permissions: tuple[str, ...] = ("*",)
    # the authenticated user is the proxy user of the contexts it starts
    proxy_user: bool = False
    # whom a user (by name, or by a group it is in) may name as spark.proxy.user besides itself
    user_impersonation: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    group_impersonation: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.mechanisms)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    cert_file: Path | None  # PEM certificate chain; None: plain HTTP
    key_file: Path | None
    key_password: str
    client_ca_file: Path | None  # CAs whose client certificates are accepted
    client_auth: str  # none | optional | required

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


def auth_settings(auth: Mapping[str, Any]) -> AuthSettings:
    """``spark.jobserver.auth`` as plain values."""
    mechanisms = _mechanisms(auth.get("mechanisms"))
    cache = _section(auth, "cache")
    permissions = _section(auth, "permissions")
    impersonation = _section(auth, "impersonation")
    users_file = str(_section(auth, "basic").get("users-file", "") or "")
    if "basic" in mechanisms and not users_file:
        raise ConfigError("spark.jobserver.auth.basic.users-file must name a file when basic is on")
    if "basic" in mechanisms and not Path(users_file).expanduser().is_file():
        raise ConfigError(f"spark.jobserver.auth.basic.users-file: no file {users_file}")
    return AuthSettings(
        mechanisms=mechanisms,
        realm=str(auth.get("realm", "Sparkjobserver Private")),
        cache_ttl_s=parse_duration_s(cache.get("time-to-live", 900)),
        cache_max_entries=_whole(cache.get("max-entries", 10_000), "auth.cache.max-entries"),
        users_file=Path(users_file).expanduser().resolve() if users_file else None,
        ldap=_ldap(_section(auth, "ldap")) if "ldap" in mechanisms else None,
        oidc=_oidc(_section(auth, "oidc")) if "oidc" in mechanisms else None,
        user_permissions=_name_lists(_section(permissions, "users"), "auth.permissions.users"),
        group_permissions=_name_lists(_section(permissions, "groups"), "auth.permissions.groups"),
        default_permissions=tuple(_strings(permissions.get("default", ["*"]), "auth.permissions.default")),
        proxy_user=parse_bool(auth.get("proxy-user", False)),
        user_impersonation=_name_lists(_section(impersonation, "users"), "auth.impersonation.users"),
        group_impersonation=_name_lists(_section(impersonation, "groups"), "auth.impersonation.groups"),
    )


def tls_settings(tls: Mapping[str, Any]) -> TlsSettings:
    """``spark.jobserver.tls`` as plain values (files are checked when the server starts)."""
    cert, key = _path(tls.get("cert-file")), _path(tls.get("key-file"))
    if (cert is None) != (key is None):
        raise ConfigError("spark.jobserver.tls needs both cert-file and key-file, or neither")
    client_auth = str(tls.get("client-auth", "none")).lower()
    if client_auth not in CLIENT_AUTH_MODES:
        raise ConfigError(f"spark.jobserver.tls.client-auth must be one of {', '.join(CLIENT_AUTH_MODES)}")
    client_ca = _path(tls.get("client-ca-file"))
    if client_auth != "none" and client_ca is None:
        raise ConfigError("spark.jobserver.tls.client-auth needs client-ca-file")
    if client_auth != "none" and cert is None:
        raise ConfigError("spark.jobserver.tls.client-auth needs cert-file and key-file")
    return TlsSettings(
        cert_file=cert,
        key_file=key,
        key_password=str(tls.get("key-password", "") or ""),
        client_ca_file=client_ca,
        client_auth=client_auth,
    )


def _mechanisms(value: Any) -> tuple[str, ...]:
    names = _strings(value, "auth.mechanisms")
    if not names:
        known = ", ".join(MECHANISMS)
        raise ConfigError(f"spark.jobserver.auth.mechanisms must be none or a list of {known}")
    if names == ["none"]:
        return ()
    unknown = [name for name in names if name not in MECHANISMS]
    if unknown:
        raise ConfigError(
            f"spark.jobserver.auth.mechanisms: unknown {', '.join(unknown)} (known: {', '.join(MECHANISMS)};"
            " none alone turns authentication off)"
        )
    return tuple(dict.fromkeys(names))


def _ldap(ldap: Mapping[str, Any]) -> LdapSettings:
    settings = LdapSettings(
        url=str(ldap.get("url", "") or ""),
        user_dn_template=str(ldap.get("user-dn-template", "") or ""),
        bind_dn=str(ldap.get("bind-dn", "") or ""),
        bind_password=str(ldap.get("bind-password", "") or ""),
        user_search_base=str(ldap.get("user-search-base", "") or ""),
        user_search_filter=str(ldap.get("user-search-filter", "(uid={user})") or ""),
        group_search_base=str(ldap.get("group-search-base", "") or ""),
        group_search_filter=str(ldap.get("group-search-filter", "(member={dn})") or ""),
        group_name_attribute=str(ldap.get("group-name-attribute", "cn") or "cn"),
        timeout_s=parse_duration_s(ldap.get("timeout", 5)),
    )
    if not settings.url:
        raise ConfigError("spark.jobserver.auth.ldap.url must be set when ldap is on")
    if not settings.user_dn_template and not settings.user_search_base:
        raise ConfigError("spark.jobserver.auth.ldap needs user-dn-template or user-search-base")
    return settings


def _oidc(oidc: Mapping[str, Any]) -> OidcSettings:
    settings = OidcSettings(
        jwks_url=str(oidc.get("jwks-url", "") or ""),
        issuer=str(oidc.get("issuer", "") or ""),
        audience=str(oidc.get("audience", "") or ""),
        username_claim=str(oidc.get("username-claim", "preferred_username") or "sub"),
        groups_claim=str(oidc.get("groups-claim", "groups") or ""),
        algorithms=tuple(_strings(oidc.get("algorithms", ["RS256"]), "auth.oidc.algorithms")),
        leeway_s=parse_duration_s(oidc.get("leeway", 30)),
    )
    for key, value in (("jwks-url", settings.jwks_url), ("issuer", settings.issuer)):
        if not value:
            raise ConfigError(f"spark.jobserver.auth.oidc.{key} must be set when oidc is on")
    if not settings.audience:
        # A token for any other application of the same identity provider would do otherwise.
        raise ConfigError("spark.jobserver.auth.oidc.audience must be set when oidc is on")
    symmetric = [name for name in settings.algorithms if name.upper() == "NONE" or name.startswith("HS")]
    if not settings.algorithms or symmetric:
        # A shared-secret (HS*) key would have to be the public JWKS; "none" checks nothing.
        raise ConfigError("spark.jobserver.auth.oidc.algorithms: public-key ones only (RS256, ES256, …)")
    return settings


def _section(values: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = values.get(key) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"spark.jobserver.auth.{key} must be an object")
    return section


def _name_lists(values: Mapping[str, Any], key: str) -> dict[str, tuple[str, ...]]:
    return {str(name): tuple(_strings(items, f"{key}.{name}")) for name, items in values.items()}


def _strings(value: Any, key: str) -> list[str]:
    if value is not None and not isinstance(value, list | str):
        raise ConfigError(f"spark.jobserver.{key} must be a list of names")
    return string_list(value)


def _path(value: Any) -> Path | None:
    text = str(value or "").strip()
    return Path(text).expanduser().resolve() if text else None


def _whole(value: Any, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"spark.jobserver.{key} must be a whole number, got {value!r}") from None
