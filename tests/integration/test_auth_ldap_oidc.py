"""Logins checked by a directory (LDAP bind, groups from a search) and by an identity provider's
bearer tokens (OIDC, keys from its JWKS), against real LDAP and HTTP services on local sockets,
through the real server: no, wrong and right credentials; groups mapped to permissions; the login
cache; the service being down is a 503, not a 401."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from jobserver.web.access import OPEN
from tests.auth_services import LdapServer, OidcIssuer
from tests.support import Api, route_requests, running_server

PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"
DIRECTORY: dict[str, dict[str, list[Any]]] = {
    f"uid=alice,{PEOPLE}": {"objectClass": ["person"], "uid": ["alice"], "userPassword": ["alice pw"]},
    f"uid=bob,{PEOPLE}": {"objectClass": ["person"], "uid": ["bob"], "userPassword": ["bob pw"]},
    f"uid=root,{PEOPLE}": {"objectClass": ["person"], "uid": ["root"], "userPassword": ["root pw"]},
    f"cn=analysts,{GROUPS}": {
        "objectClass": ["groupOfNames"],
        "cn": ["analysts"],
        "member": [f"uid=alice,{PEOPLE}"],
    },
}
PERMISSIONS = {
    "spark.jobserver.auth.permissions.users": {"root": ["*"]},
    "spark.jobserver.auth.permissions.groups": {"analysts": ["jobs", "binaries:read"]},
    "spark.jobserver.auth.permissions.default": ["binaries:read"],
}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def assert_every_route_needs_a_login(
    api: Api, wrong: dict[str, str], right: dict[str, str], challenge: str
) -> None:
    """No credentials and wrong ones: 401 with the challenge on every route but /healthz; right
    ones (a user holding *): never 401 or 403."""
    for method, path, permission in route_requests():
        for headers in ({}, wrong):
            status, body, response = await api.call(method, path, headers=headers)
            if permission == OPEN:
                assert status == 200, (method, path)
                continue
            assert (status, body["status"]) == (401, "ERROR"), (method, path, headers)
            assert response.headers["WWW-Authenticate"].startswith(challenge), (method, path)
        status, body, _ = await api.call(method, path, headers=right)
        assert status not in (401, 403), (method, path, body)


@pytest.fixture
def directory() -> Iterator[LdapServer]:
    server = LdapServer(DIRECTORY)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer(audience="jobserver") as running:
        yield running


@pytest_asyncio.fixture
async def ldap_api(directory: LdapServer, tmp_path: Path) -> AsyncIterator[Api]:
    overrides = {
        "spark.jobserver.auth.mechanisms": ["ldap"],
        "spark.jobserver.auth.ldap.url": directory.url,
        "spark.jobserver.auth.ldap.user-dn-template": f"uid={{user}},{PEOPLE}",
        "spark.jobserver.auth.ldap.group-search-base": GROUPS,
        "spark.jobserver.auth.ldap.group-search-filter": "(&(objectClass=groupOfNames)(member={dn}))",
        **PERMISSIONS,
    }
    async with running_server(tmp_path / "server", overrides) as api:
        yield api


async def test_ldap_logins_bind_as_the_user_and_map_its_groups(ldap_api: Api, directory: LdapServer) -> None:
    await assert_every_route_needs_a_login(
        ldap_api, basic("root", "wrong"), basic("root", "root pw"), 'Basic realm="Sparkjobserver Private"'
    )
    assert (await ldap_api.call("GET", "/jobs"))[0] == 401
    for wrong in (basic("alice", "nope"), basic("carol", "alice pw"), basic("alice", "")):
        status, body, response = await ldap_api.call("GET", "/jobs", headers=wrong)
        assert (status, body["status"]) == (401, "ERROR")
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="Sparkjobserver Private"')
    # alice is an analyst: jobs and binaries:read; bob is in no group: the default, binaries:read
    assert (await ldap_api.call("GET", "/jobs", headers=basic("alice", "alice pw")))[0] == 200
    assert (await ldap_api.call("GET", "/binaries", headers=basic("bob", "bob pw")))[0] == 200
    assert (await ldap_api.call("GET", "/jobs", headers=basic("bob", "bob pw")))[0] == 403
    assert (await ldap_api.call("DELETE", "/binaries/x", headers=basic("alice", "alice pw")))[0] == 403


async def test_ldap_logins_are_cached_and_an_unreachable_directory_is_503(
    ldap_api: Api, directory: LdapServer
) -> None:
    alice = basic("alice", "alice pw")
    assert (await ldap_api.call("GET", "/jobs", headers=alice))[0] == 200
    binds = directory.bind_count
    for _ in range(5):
        assert (await ldap_api.call("GET", "/jobs", headers=alice))[0] == 200
    assert directory.bind_count == binds  # answered from the login cache
    directory.stop()
    # the cached login still works; a login the server has not seen cannot be checked: 503
    assert (await ldap_api.call("GET", "/jobs", headers=alice))[0] == 200
    status, body, _ = await ldap_api.call("GET", "/jobs", headers=basic("bob", "bob pw"))
    assert (status, body["status"]) == (503, "ERROR"), body


@pytest_asyncio.fixture
async def oidc_api(issuer: OidcIssuer, tmp_path: Path) -> AsyncIterator[Api]:
    overrides = {
        "spark.jobserver.auth.mechanisms": ["oidc"],
        "spark.jobserver.auth.oidc.jwks-url": issuer.jwks_url,
        "spark.jobserver.auth.oidc.issuer": issuer.issuer,
        "spark.jobserver.auth.oidc.audience": "jobserver",
        "spark.jobserver.auth.oidc.username-claim": "sub",
        **PERMISSIONS,
    }
    async with running_server(tmp_path / "server", overrides) as api:
        yield api


async def test_bearer_tokens_are_checked_against_the_providers_keys(
    oidc_api: Api, issuer: OidcIssuer
) -> None:
    await assert_every_route_needs_a_login(
        oidc_api,
        bearer(issuer.expired_token()),
        bearer(issuer.token(sub="root")),
        'Bearer realm="Sparkjobserver Private"',
    )
    status, _, response = await oidc_api.call("GET", "/jobs")
    assert status == 401 and response.headers["WWW-Authenticate"] == 'Bearer realm="Sparkjobserver Private"'
    refused = {
        "expired": issuer.expired_token(),
        "other audience": issuer.token(audience="another-app"),
        "other issuer": issuer.token(issuer="https://impostor.example"),
        "forged signature": issuer.token_from_unknown_key(),
        "unknown key": issuer.token_from_unknown_key(kid="never-published"),
        "not a token": "not.a.jwt",
    }
    for what, token in refused.items():
        status, body, response = await oidc_api.call("GET", "/jobs", headers=bearer(token))
        assert (status, body["status"]) == (401, "ERROR"), what
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], what
    analyst = issuer.token(sub="alice", groups=["analysts"])
    assert (await oidc_api.call("GET", "/jobs", headers=bearer(analyst)))[0] == 200
    assert (await oidc_api.call("DELETE", "/binaries/x", headers=bearer(analyst)))[0] == 403
    nobody = issuer.token(sub="bob")
    assert (await oidc_api.call("GET", "/binaries", headers=bearer(nobody)))[0] == 200
    assert (await oidc_api.call("GET", "/jobs", headers=bearer(nobody)))[0] == 403
    # Basic is not accepted where only tokens are
    assert (await oidc_api.call("GET", "/jobs", headers=basic("alice", "alice pw")))[0] == 401


async def test_tokens_are_cached_and_an_unreachable_key_set_is_503(oidc_api: Api, issuer: OidcIssuer) -> None:
    token = issuer.token(sub="alice", groups=["analysts"])
    issuer.jwks_status = 503  # the provider is down: the token may be good, so no 401
    status, body, _ = await oidc_api.call("GET", "/jobs", headers=bearer(token))
    assert (status, body["status"]) == (503, "ERROR"), body
    issuer.jwks_status = 200
    assert (await oidc_api.call("GET", "/jobs", headers=bearer(token)))[0] == 200
    fetches = issuer.jwks_fetch_count
    for _ in range(5):
        assert (await oidc_api.call("GET", "/jobs", headers=bearer(token)))[0] == 200
    assert issuer.jwks_fetch_count == fetches  # answered from the login cache
