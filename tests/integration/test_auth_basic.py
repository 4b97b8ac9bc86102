"""Authentication with HTTP Basic against a users file, and spark-jobserver's permissions, as a
client sees them: every route with no, wrong and right credentials; 401 with a challenge and 403
in the contract's envelope; the user on jobs and contexts; whom contexts run as."""

from __future__ import annotations

import base64
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from jobserver.auth.users_file import hash_password
from jobserver.web.access import OPEN
from tests.support import (
    FAKE_SPARK_HOMES,
    Api,
    processes_mentioning,
    route_requests,
    running_server,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSWORDS = {
    "admin": "s3cret admin",
    "reader": "read-only",
    "starter": "starts jobs",
    "other": "also starts jobs",
    "airflow": "dags",
}
ECHO = "def main(spark, config):\n    return config.get('input', 'none')\n"
CHALLENGE = 'Basic realm="Sparkjobserver Private", charset="UTF-8"'


def basic(user: str, password: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password or PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write_users(path: Path, passwords: dict[str, str], groups: dict[str, str] | None = None) -> None:
    lines = []
    for user, password in passwords.items():
        group = (groups or {}).get(user)
        entry = f"{user}:{hash_password(password, rounds=4)}"
        lines.append(f"{entry}:{group}" if group else entry)
    path.write_text("# users of the test server\n" + "\n".join(lines) + "\n")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    work_dir = tmp_path_factory.mktemp("auth-basic")
    users = work_dir.parent / "users"
    write_users(users, PASSWORDS, {"starter": "etl", "other": "etl", "airflow": "schedulers"})
    overrides: dict[str, Any] = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.auth.mechanisms": ["basic"],
        "spark.jobserver.auth.basic.users-file": str(users),
        "spark.jobserver.auth.permissions.users": {"admin": ["*"], "reader": ["binaries:read", "jobs:read"]},
        "spark.jobserver.auth.permissions.groups": {
            "etl": ["jobs", "contexts", "binaries"],
            "schedulers": ["*"],
        },
        "spark.jobserver.auth.permissions.default": [],
        "spark.jobserver.auth.proxy-user": True,
        "spark.jobserver.auth.impersonation.groups": {"schedulers": ["etl-runner"]},
    }
    async with running_server(work_dir, overrides) as api:
        yield api


@pytest.mark.parametrize(("method", "path", "permission"), route_requests())
async def test_every_route_needs_a_login_and_its_permission(
    api: Api, method: str, path: str, permission: str
) -> None:
    anonymous = await api.call(method, path)
    wrong = await api.call(method, path, headers=basic("admin", "not the password"))
    unknown = await api.call(method, path, headers=basic("mallory", "whatever"))
    admitted = await api.call(method, path, headers=basic("admin"))
    if permission == OPEN:
        assert {anonymous[0], wrong[0], admitted[0]} == {200}
        return
    for status, body, response in (anonymous, wrong, unknown):
        assert status == 401, (method, path, body)
        assert body["status"] == "ERROR" and body["result"].startswith("The ")
        assert response.headers.getall("WWW-Authenticate") == [CHALLENGE]
    assert admitted[0] not in (401, 403), (method, path, admitted[1])
    reader = await api.call(method, path, headers=basic("reader"))
    if permission in ("binaries:read", "jobs:read"):
        assert reader[0] not in (401, 403), (method, path, reader[1])
    else:
        assert (reader[0], reader[1]) == (
            403,
            {
                "status": "ERROR",
                "result": "The supplied authentication is not authorized to access this resource",
            },
        ), (method, path)


async def test_health_stays_open_and_unknown_paths_need_a_login(api: Api) -> None:
    assert (await api.call("GET", "/healthz"))[0] == 200
    assert (await api.call("GET", "/no/such/path"))[0] == 401
    assert (await api.call("GET", "/no/such/path", headers=basic("reader")))[0] == 404


async def test_a_method_override_needs_the_permission_of_the_method_it_names(api: Api) -> None:
    status, _, _ = await api.call("GET", "/binaries", headers=basic("reader"))
    assert status == 200
    # reader may read binaries; a POST that says DELETE is a delete, which it may not do
    status, body, _ = await api.call("POST", "/binaries/x?_method=DELETE", headers=basic("reader"))
    assert status == 403, body
    status, body, _ = await api.call("POST", "/binaries/x?_method=DELETE", headers=basic("admin"))
    assert status == 404, body


async def test_malformed_authorization_headers_are_401(api: Api) -> None:
    for header in (
        "Basic",
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer x",
    ):
        status, _, response = await api.call("GET", "/jobs", headers={"Authorization": header})
        assert status == 401, header
        assert response.headers.getall("WWW-Authenticate") == [CHALLENGE]


async def test_jobs_and_contexts_carry_their_user_and_run_as_it(api: Api, tmp_path: Path) -> None:
    starter = basic("starter")
    package = tmp_path / "echo.egg"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("echo.py", ECHO)
    await api.upload("echo", package, "application/python-archive", headers=starter)
    status, body, _ = await api.call("POST", "/contexts/owned", headers=starter)
    assert status == 200, body
    _, info, _ = await api.call("GET", "/contexts/owned", headers=starter)
    assert info["user"] == "starter"
    # proxy-user mode: the driver was started as the user who asked for it
    assert any("--proxy-user starter" in _cmdline(pid) for pid in processes_mentioning(info["id"]))
    submit = "/jobs?appName=echo&classPath=echo:main&context=owned&sync=true"
    status, body, _ = await api.call("POST", submit, data="input = hi", headers=starter)
    assert (status, body["result"]) == (200, "hi"), body
    _, report, _ = await api.call("GET", f"/jobs/{body['jobId']}", headers=starter)
    assert (report["user"], report["status"]) == ("starter", "FINISHED")
    # another user of the same group may not use or stop a context that runs as starter …
    for method, path in (("POST", submit), ("DELETE", "/contexts/owned")):
        status, body, _ = await api.call(method, path, headers=basic("other"))
        assert status == 403 and "runs as starter" in body["result"], (method, body)
    # … one who may act as anyone may
    status, body, _ = await api.call("DELETE", "/contexts/owned", headers=basic("admin"))
    assert status in (200, 202), body


async def test_a_client_names_a_proxy_user_only_if_it_may_act_as_them(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", "/contexts/as-hdfs?spark.proxy.user=hdfs", headers=basic("starter")
    )
    assert status == 403 and "may not run contexts as hdfs" in body["result"], body
    status, body, _ = await api.call(
        "POST", "/contexts/as-runner?spark.proxy.user=etl-runner", headers=basic("airflow")
    )
    assert status == 200, body
    _, info, _ = await api.call("GET", "/contexts/as-runner", headers=basic("airflow"))
    assert info["user"] == "airflow"
    assert any("--proxy-user etl-runner" in _cmdline(pid) for pid in processes_mentioning(info["id"]))
    assert (await api.call("DELETE", "/contexts/as-runner", headers=basic("airflow")))[0] in (200, 202)


async def test_a_changed_users_file_ends_cached_logins(api: Api) -> None:
    users = Path(str(api.settings.auth.users_file))
    original = users.read_text()
    assert (await api.call("GET", "/jobs", headers=basic("reader")))[0] == 200
    try:
        write_users(users, {**PASSWORDS, "reader": "changed"})

        async def old_password_refused() -> bool:
            return (await api.call("GET", "/jobs", headers=basic("reader")))[0] == 401

        await wait_until(old_password_refused, timeout_s=10, what="the old password refused")
        assert (await api.call("GET", "/jobs", headers=basic("reader", "changed")))[0] == 200
    finally:
        users.write_text(original)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
