"""Warm driver pools (spark.jobserver.pool) with the real driver code and no JVM (tests/fakes/light):
ad-hoc jobs take a warm driver, which is reused, replaced after max-jobs or a job that changed its
session, refilled, trimmed after idle-timeout, and found again after a server restart."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from jobserver.auth.users_file import hash_password
from tests.support import (
    FAKE_SPARK_HOMES,
    Api,
    ServerProcess,
    free_port,
    processes_mentioning,
    running_server,
    wait_until,
)

# A single-module binary: each job says which driver process ran it.
PID_JOBS = b"""import os
import time


def pid(spark, config):
    return os.getpid()


def leave_conf(spark, config):
    spark.conf.set("tenant.note", "left behind")
    return os.getpid()


def wait(spark, config):
    time.sleep(60)
"""


def pool_settings(**pool: Any) -> dict[str, Any]:
    warm = {"size": 1, "max-jobs": 3, "idle-timeout": "1s", **pool}
    return {"spark.home": str(FAKE_SPARK_HOMES / "light"), "spark.jobserver.pool": {"warm": warm}}


async def _pool(api: Api) -> dict[str, Any]:
    status, pools, _ = await api.call("GET", "/pools")
    assert status == 200, pools
    return next(pool for pool in pools if pool["name"] == "warm")


async def _warm(api: Api, idle: int = 1, *, other_than: list[str] | None = None) -> dict[str, Any]:
    """The pool once it has ``idle`` idle drivers and nothing else (none of ``other_than``)."""

    async def settled() -> dict[str, Any] | None:
        pool = await _pool(api)
        fresh = not set(pool["contextIds"]) & set(other_than or [])
        quiet = pool["busy"] == pool["launching"] == 0 and len(pool["contextIds"]) == idle
        return pool if pool["idle"] == idle and quiet and fresh else None

    return await wait_until(settled, timeout_s=30, what=f"pool with {idle} idle driver(s)")


async def _run(api: Api, function: str = "pid", query: str = "", data: str = "") -> tuple[int, str]:
    """An ad-hoc job's result (the pid of the driver that ran it) and its id."""
    status, body, _ = await api.call(
        "POST", f"/jobs?cp=pid_jobs&mainClass=pid_jobs:{function}&sync=true{query}", data=data
    )
    assert status == 200, body
    return body["result"], body["jobId"]


async def _upload(api: Api) -> None:
    headers = {"Content-Type": "text/x-python"}
    assert (await api.call("POST", "/binaries/pid_jobs", data=PID_JOBS, headers=headers))[0] == 201


async def test_a_pooled_driver_runs_adhoc_jobs_in_turn_until_max_jobs_then_is_replaced(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, pool_settings()) as api:
        await _upload(api)
        first = await _warm(api)
        assert first["size"] == 1 and first["maxJobs"] == 3
        pids = [await _run(api) for _ in range(3)]
        assert len({pid for pid, _ in pids}) == 1  # one driver served all three
        _, report, _ = await api.call("GET", f"/jobs/{pids[0][1]}")
        assert report["context"] == "<<ad-hoc>>" and report["contextId"] == first["contextIds"][0]
        assert (await api.call("GET", "/contexts"))[1] == []  # pooled drivers are not user contexts
        # the third job was its max-jobs: the driver is replaced, and the pool is full again
        await _warm(api, other_than=first["contextIds"])
        pid, _ = await _run(api)
        assert pid != pids[0][0]
        await _warm(api)  # the driver it took, or its replacement: one stays


async def test_a_job_that_changed_its_session_leaves_a_fresh_driver_for_the_next_tenant(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, pool_settings(**{"max-jobs": 100})) as api:
        await _upload(api)
        await _warm(api)
        clean, _ = await _run(api)
        assert (await _run(api))[0] == clean  # a clean driver goes back and serves again
        dirty, _ = await _run(api, "leave_conf")
        assert dirty == clean
        await _warm(api)
        assert (await _run(api))[0] != dirty  # the next tenant never sees that setting


async def test_jobs_matching_no_pool_start_their_own_driver_and_unknown_pools_are_refused(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, pool_settings(**{"idle-timeout": "1m"})) as api:
        await _upload(api)
        await _warm(api)

        async def run(query: str = "", data: str = "") -> tuple[int, bool]:
            """The job's driver pid, and whether that driver was a warm one of the pool when the
            job was sent (its own driver is launched for it; a pool driver may be replaced after,
            max-jobs being 3, and while it is taken another is launched beside it)."""

            async def settled() -> set[str] | None:
                pool = await _pool(api)
                quiet = pool["busy"] == pool["launching"] == 0 and pool["idle"] >= 1
                return set(pool["contextIds"]) if quiet else None

            warm = await wait_until(settled, timeout_s=30, what="the pool's drivers idle")
            pid, job_id = await _run(api, query=query, data=data)
            _, report, _ = await api.call("GET", f"/jobs/{job_id}")
            return pid, report["contextId"] in warm

        pooled, from_pool = await run()
        own, own_from_pool = await run(data="spark.context-settings.num-cpu-cores = 3")
        assert from_pool and not own_from_pool and own != pooled
        assert (await run(data="input = 1, spark.context-settings {}"))[1]
        status, body, _ = await api.call("POST", "/jobs?cp=pid_jobs&mainClass=pid_jobs:pid&pool=cold")
        assert status == 400 and body["result"] == "unknown pool cold; pools: warm", body
        assert (await run(query="&pool=warm"))[1]


async def test_drivers_given_back_beyond_the_pool_size_stop_after_idle_timeout(tmp_path: Path) -> None:
    async with running_server(tmp_path, pool_settings(**{"max-jobs": 100})) as api:
        await _upload(api)
        first = await _warm(api)
        status, body, _ = await api.call("POST", "/jobs?cp=pid_jobs&mainClass=pid_jobs:pid")
        assert status == 202, body
        await api.wait_job_state(body["jobId"], "FINISHED")

        async def two_idle() -> bool:
            pool = await _pool(api)
            return pool["idle"] == 2 or (
                pool["idle"] == 1 and first["contextIds"][0] not in pool["contextIds"]
            )

        # while the job ran a second driver was launched; when both are idle, one stops after 1 s
        await wait_until(two_idle, timeout_s=30, what="the taken driver back beside its replacement")
        settled = await _warm(api)
        assert len(settled["contextIds"]) == 1


async def test_a_driver_whose_job_was_killed_is_replaced(tmp_path: Path) -> None:
    async with running_server(tmp_path, pool_settings(**{"max-jobs": 100})) as api:
        await _upload(api)
        first = await _warm(api)
        status, body, _ = await api.call("POST", "/jobs?cp=pid_jobs&mainClass=pid_jobs:wait")
        assert status == 202 and body["contextId"] == first["contextIds"][0], body
        await api.wait_job_state(body["jobId"], "RUNNING")
        assert (await api.call("DELETE", f"/jobs/{body['jobId']}"))[1] == {"status": "KILLED"}
        await _warm(api, other_than=first["contextIds"])  # its thread may still run: never reused


def _login(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{user}-secret".encode()).decode()}


async def test_in_proxy_user_mode_a_pool_serves_only_its_run_as_user(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(
        "".join(f"{user}:{hash_password(f'{user}-secret', rounds=4)}\n" for user in ("ann", "bob"))
    )
    overrides = {
        **pool_settings(**{"run-as": "ann", "idle-timeout": "1m"}),
        "spark.jobserver.auth.mechanisms": ["basic"],
        "spark.jobserver.auth.basic.users-file": str(users),
        "spark.jobserver.auth.proxy-user": True,
    }
    async with running_server(tmp_path / "work", overrides) as api:
        headers = {"Content-Type": "text/x-python", **_login("ann")}
        assert (await api.call("POST", "/binaries/pid_jobs", data=PID_JOBS, headers=headers))[0] == 201
        await wait_until(lambda: _idle_for(api, "ann"), timeout_s=30, what="ann's pooled driver")
        path = "/jobs?cp=pid_jobs&mainClass=pid_jobs:pid&sync=true"
        results = {}
        for user in ("ann", "bob"):
            status, body, _ = await api.call("POST", path, headers=_login(user))
            assert status == 200, body
            _, report, _ = await api.call("GET", f"/jobs/{body['jobId']}", headers=_login(user))
            assert (report["user"], report["context"] == "<<ad-hoc>>") == (user, user == "ann"), report
            results[user] = report["contextId"]
        status, pools, _ = await api.call("GET", "/pools", headers=_login("ann"))
        assert results["ann"] in pools[0]["contextIds"] and results["bob"] not in pools[0]["contextIds"]
        status, body, _ = await api.call("POST", path + "&pool=warm", headers=_login("bob"))
        assert status == 403 and body["result"] == "pool warm runs as ann, not bob", body


async def _idle_for(api: Api, user: str) -> bool:
    _, pools, _ = await api.call("GET", "/pools", headers=_login(user))
    return bool(pools[0]["idle"])


class Site:
    """A real `jobserver` process with a warm pool, to be restarted."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.work_dir = tmp_path / "work"
        settings = {
            "spark.jobserver.port": self.port,
            "spark.jobserver.work-dir": str(self.work_dir),
            "spark.jobserver.heartbeat.interval": "200ms",
            "spark.jobserver.reattach-grace": "10s",
            **pool_settings(**{"max-jobs": 100}),
        }
        config = tmp_path / "server.conf"
        config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
        self.server = ServerProcess(config, tmp_path / "server.log")

    async def call(self, method: str, path: str, data: Any = None, **headers: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base_url + path, data=data, headers=headers) as response,
        ):
            return response.status, await response.json()

    async def pool(self, idle: int) -> dict[str, Any]:
        async def settled() -> dict[str, Any] | None:
            _, pools = await self.call("GET", "/pools")
            return pools[0] if pools[0]["idle"] == idle and len(pools[0]["contextIds"]) == idle else None

        return await wait_until(settled, timeout_s=30, what=f"{idle} idle pooled driver(s)")


@contextlib.contextmanager
def _cleaned_up(site: Site) -> Iterator[Site]:
    try:
        yield site
    finally:
        site.server.kill_if_running()
        for pid in processes_mentioning(str(site.work_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_a_pool_is_found_again_after_a_restart_with_its_rejoined_drivers(tmp_path: Path) -> None:
    with _cleaned_up(Site(tmp_path)) as site:
        await site.server.start(site.base_url)
        headers = {"Content-Type": "text/x-python"}
        assert (await site.call("POST", "/binaries/pid_jobs", PID_JOBS, **headers))[0] == 201
        await site.pool(1)
        status, body = await site.call("POST", "/jobs?cp=pid_jobs&mainClass=pid_jobs:pid&sync=true")
        assert status == 200, body
        before = await site.pool(1)
        assert await site.server.stop(signal.SIGUSR1) == 0  # --keep-contexts: the driver runs on
        await site.server.start(site.base_url)
        after = await site.pool(1)
        assert after["contextIds"] == before["contextIds"]  # the rejoined driver, no other launched
        status, again = await site.call("POST", "/jobs?cp=pid_jobs&mainClass=pid_jobs:pid&sync=true")
        assert status == 200, again
        _, report = await site.call("GET", f"/jobs/{again['jobId']}")
        assert report["contextId"] == before["contextIds"][0]  # served by the driver that rejoined
        assert await site.server.stop() == 0
        await wait_until(lambda: _none_left(site), timeout_s=30, what="no driver left after a plain stop")


async def _none_left(site: Site) -> bool:
    return not processes_mentioning(str(site.work_dir))
