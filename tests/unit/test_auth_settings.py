"""The authentication settings and permissions: mistakes stop the server at start-up with the key's
name, never leave the API open; permission identifiers behave as spark-jobserver's; every route
has a permission; jobserver-passwd writes users the server accepts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobserver.auth.identity import Permissions
from jobserver.auth.users_file import UsersFile
from jobserver.common.config import load_settings
from jobserver.common.errors import ConfigError, Forbidden
from jobserver.common.security_settings import AuthSettings
from jobserver.web.access import ROUTE_PERMISSIONS
from jobserver.web.app import create_app

AUTH = "spark.jobserver.auth"


def settings(**overrides: Any) -> AuthSettings:
    return load_settings(None, {f"{AUTH}.{key}": value for key, value in overrides.items()}).auth


def test_authentication_is_off_only_when_the_config_says_none() -> None:
    assert not settings().enabled  # conf/defaults.conf says none, in so many words
    for mechanisms, message in (([], "must be none or a list"), (["basic", "kerberos"], "unknown kerberos")):
        with pytest.raises(ConfigError, match=message):
            settings(mechanisms=mechanisms)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mechanisms": ["basic"]}, "users-file must name a file"),
        ({"mechanisms": ["basic"], "basic.users-file": "/no/such/users"}, "no file /no/such/users"),
        ({"mechanisms": ["ldap"]}, "ldap.url must be set"),
        ({"mechanisms": ["ldap"], "ldap.url": "ldap://x"}, "user-dn-template or user-search-base"),
        ({"mechanisms": ["oidc"], "oidc.jwks-url": "https://x/jwks", "oidc.issuer": "https://x"}, "audience"),
        (
            {
                "mechanisms": ["oidc"],
                "oidc.jwks-url": "https://x/jwks",
                "oidc.issuer": "https://x",
                "oidc.audience": "a",
                "oidc.algorithms": ["HS256"],
            },
            "public-key ones only",
        ),
    ],
)
def test_incomplete_mechanisms_are_config_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**overrides)


def test_unknown_permissions_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"permissions.users.bob: unknown permission jobs:run"):
        Permissions(settings(**{"permissions.users": {"bob": ["jobs:run"]}}))


def test_permissions_follow_spark_jobservers_identifiers() -> None:
    permissions = Permissions(
        settings(
            **{
                "permissions.users": {"root": ["*"], "ops": ["contexts"]},
                "permissions.groups": {"readers": ["jobs:read"], "writers": ["jobs:start"]},
                "permissions.default": [],
                "impersonation.groups": {"writers": ["etl"]},
            }
        )
    )
    root = permissions.identity("root", (), "basic")
    ops = permissions.identity("ops", (), "basic")
    both = permissions.identity("carol", ("readers", "writers"), "ldap")
    nobody = permissions.identity("dave", ("unknown",), "oidc")
    assert root.may("data:reset") and root.acts_as() == {"*"}
    assert ops.may("contexts:reset") and ops.may("contexts:read") and not ops.may("jobs:read")
    assert both.may("jobs:read") and both.may("jobs:start") and not both.may("jobs:delete")
    assert not nobody.may("binaries:read")
    # whom a context runs as: itself or an allowed user when asked, nobody in particular otherwise
    assert permissions.proxy_user(both, None) is None
    assert permissions.proxy_user(both, "etl") == "etl"
    assert permissions.proxy_user(both, "carol") == "carol"
    with pytest.raises(Forbidden, match="carol may not run contexts as hdfs"):
        permissions.proxy_user(both, "hdfs")


def test_proxy_user_mode_runs_contexts_as_their_user() -> None:
    permissions = Permissions(settings(**{"proxy-user": True}))
    assert permissions.proxy_user(permissions.identity("erin", (), "basic"), None) == "erin"


def test_a_user_mapped_to_nothing_gets_the_default_which_is_everything_like_spark_jobserver() -> None:
    assert Permissions(settings()).identity("anyone", (), "basic").may("data:reset")


def test_every_route_has_a_permission() -> None:
    app = create_app(load_settings())
    routes = {
        ("GET" if route.method == "HEAD" else route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    assert routes == set(ROUTE_PERMISSIONS)


def test_jobserver_passwd_writes_users_the_server_accepts(tmp_path: Path) -> None:
    users = tmp_path / "users"
    command = [sys.executable, "-m", "jobserver.auth.passwd", str(users)]
    for name, password, extra in (("alice", "pw one", ["--groups", "etl,ops"]), ("bob", "pw two", [])):
        subprocess.run([*command, name, *extra], input=f"{password}\n", text=True, check=True, timeout=60)
    subprocess.run([*command, "alice"], input="pw three\n", text=True, check=True, timeout=60)
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    table = UsersFile(users)
    assert table.check("alice", "pw three") == {"etl", "ops"}  # a new password keeps the groups
    assert table.check("alice", "pw one") is None
    assert table.check("bob", "pw two") == frozenset()
    assert table.check("carol", "pw two") is None
    subprocess.run([*command, "bob", "--delete"], check=True, timeout=60, stdin=subprocess.DEVNULL)
    assert UsersFile(users).check("bob", "pw two") is None


@pytest.mark.parametrize(
    ("overrides", "warned"),
    [
        ({}, True),  # the defaults: off, on every interface
        ({"spark.jobserver.bind-address": "127.0.0.1"}, False),
        ({"spark.jobserver.bind-address": "::1"}, False),
    ],
)
def test_the_server_warns_when_the_api_is_open_to_other_hosts(
    overrides: dict[str, Any], warned: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobserver.__main__ import _warn_when_open

    _warn_when_open(load_settings(None, overrides))
    assert ("WARNING: authentication is OFF" in capsys.readouterr().err) is warned
