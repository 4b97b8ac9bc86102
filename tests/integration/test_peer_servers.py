"""Several servers on one PostgreSQL database act as one: a request about a context another server
runs is forwarded to it, and the drivers of a server that dies are adopted by a live one.

The real `jobserver` command in child processes (a SIGKILL must be real), sharing one key file and
one database, with stand-in spark-submits (tests/fakes/light: the real driver code, no JVM).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from jobserver.auth.users_file import hash_password
from tests.support import (
    EXAMPLES_WHEEL,
    FAKE_SPARK_HOMES,
    CallbackListener,
    ServerProcess,
    callback_listener,
    free_port,
    processes_mentioning,
    wait_until,
)

SLEEP = "example_jobs.sleep_job.PythonSleepJob"
ECHO = "example_jobs.echo.EchoJob"


class Peer:
    """One server of the group: its own port, work dir and log; the database and key shared."""

    def __init__(self, root: Path, name: str, shared: dict[str, Any]) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.work_dir = root / name / "work"  # in no server command line: drivers only
        settings = {
            "spark.jobserver.server-id": name,
            "spark.jobserver.port": self.port,
            "spark.jobserver.work-dir": str(self.work_dir),
            "spark.jobserver.peers.advertised-url": self.base_url,
            **shared,
        }
        config = root / f"{name}.conf"
        config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
        self.log_file = root / f"{name}.log"
        self.server = ServerProcess(config, self.log_file)

    async def call(
        self, method: str, path: str, data: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base_url + path, data=data, headers=headers) as response,
        ):
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def wait_job(
        self, job_id: str, state: str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            status, job = await self.call("GET", f"/jobs/{job_id}", headers=headers)
            return job if status == 200 and job["status"] == state else None

        return await wait_until(reached, timeout_s=30, what=f"job {job_id} {state} on {self.name}")

    def drivers(self) -> list[int]:
        return processes_mentioning(str(self.work_dir))


def shared_settings(root: Path, database_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.store.url": database_url,
        "spark.jobserver.key-file": str(root / "group.key"),
        "spark.jobserver.heartbeat.interval": "200ms",
        "spark.jobserver.heartbeat.timeout": "3s",
        "spark.jobserver.peers.heartbeat-interval": "300ms",
        "spark.jobserver.peers.timeout": "2s",
        "spark.jobserver.reattach-grace": "15s",
        "spark.jobserver.driver.server-silence-grace": "30s",
        "spark.jobserver.callback.allowed-hosts": ["127.0.0.1"],
        **extra,
    }


@contextlib.contextmanager
def peer_group(root: Path, database_url: str, names: tuple[str, ...], **extra: Any) -> Iterator[list[Peer]]:
    shared = shared_settings(root, database_url, **extra)
    peers = [Peer(root, name, shared) for name in names]
    try:
        yield peers
    finally:
        for peer in peers:
            peer.server.kill_if_running()
        for peer in peers:  # a failed test must not leave drivers behind
            for pid in peer.drivers():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def two_servers(root: Path, database_url: str, **extra: Any) -> Iterator[tuple[Peer, Peer]]:
    with peer_group(root, database_url, ("server-a", "server-b"), **extra) as (first, second):
        yield first, second


async def _upload_and_create(peer: Peer, name: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    status, _ = await peer.call(
        "POST",
        "/binaries/examples",
        EXAMPLES_WHEEL.read_bytes(),
        {"Content-Type": "application/python-wheel", **(headers or {})},
    )
    assert status == 201
    status, body = await peer.call("POST", f"/contexts/{name}", headers=headers)
    assert status == 200, body
    return (await peer.call("GET", f"/contexts/{name}", headers=headers))[1]


async def _started_with_a_context_on_a(a: Peer, b: Peer, name: str) -> Path:
    """Both servers up, and a context on server-a whose driver knows it may go to server-b; the
    driver's log."""
    await a.server.start(a.base_url)
    await b.server.start(b.base_url)
    context = await _upload_and_create(a, name)
    driver_log = a.work_dir / "logs" / f"{context['id']}.log"
    await wait_until(
        lambda: _logged(driver_log, "servers this driver may go to"),
        timeout_s=10,
        what="the driver told of server-b",
    )
    return driver_log


async def _serves(peer: Peer, sync_job: str) -> bool:
    status, _ = await peer.call("POST", sync_job, '{"input": 1}')
    return status == 200


async def _frozen_until_adopted(a: Peer, b: Peer, sync_job: str) -> None:
    """server-a paused until server-b has adopted its context (and runs ``sync_job`` in it), then
    woken until it lets go of it."""
    a.server.send_signal(signal.SIGSTOP)  # a long pause: its heartbeat in the store stops
    try:
        # Asked before it has adopted the context, server-b would forward the job to the frozen
        # server-a and wait out the forward's whole deadline.
        await wait_until(
            lambda: _logged(b.log_file, "driver_rejoined"), timeout_s=60, what="server-b adopting the context"
        )
        await wait_until(
            lambda: _serves(b, sync_job), timeout_s=30, what="server-b running the adopted context"
        )
    finally:
        a.server.send_signal(signal.SIGCONT)
    await wait_until(
        lambda: _logged(a.log_file, "context_taken_over"), timeout_s=15, what="server-a letting go"
    )


async def test_jobs_a_stop_and_a_reset_through_either_server_reach_the_context_the_other_runs(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    small_chunks = {"spark.jobserver.result-chunk-size": "64k"}
    with two_servers(tmp_path, fresh_postgres_url, **small_chunks) as (a, b):
        key = tmp_path / "group.key"
        await a.server.start(a.base_url)
        await b.server.start(b.base_url)
        assert oct(key.stat().st_mode & 0o777) == "0o600", "one key for the group, created once"
        context = await _upload_and_create(a, "shared")

        # sync, through the server that does not run the context
        status, echoed = await b.call(
            "POST", f"/jobs?appName=examples&classPath={ECHO}&context=shared&sync=true", '{"input": 7}'
        )
        assert (status, echoed["result"]) == (200, 7)
        # a result of many chunks streams through the forwarding server as it comes
        large = "".join(f"{n:07d}" for n in range(60_000))  # 420 kB: seven 64 kB chunks and more
        path = f"/jobs?appName=examples&classPath={ECHO}&context=shared&sync=true"
        streamed, big_id = await _streamed(b, "POST", path, json.dumps({"input": large}))
        assert streamed["result"] == large
        await b.wait_job(big_id, "FINISHED")  # the sync answer comes before the store has it
        stored, _ = await _streamed(b, "GET", f"/jobs/{big_id}")
        assert (stored["status"], stored["result"]) == ("FINISHED", large)
        # async, through it too: both servers answer the same about the job
        status, started = await b.call(
            "POST", f"/jobs?appName=examples&classPath={SLEEP}&context=shared", "sleep.seconds = 1"
        )
        assert status == 202, started
        assert started["context"] == "shared" and started["contextId"] == context["id"]
        on_b = await b.wait_job(started["jobId"], "FINISHED")
        on_a = await a.wait_job(started["jobId"], "FINISHED")
        assert on_a == on_b and on_a["result"] == 1.0
        assert (await b.call("GET", f"/jobs/{echoed['jobId']}"))[1]["result"] == 7
        assert (await b.call("GET", "/contexts"))[1] == ["shared"]
        assert (await b.call("GET", "/contexts/shared/objects"))[0] == 200
        drivers = a.drivers()
        assert drivers, "server-a runs the context's driver"

        # a stop through server-b ends the context where it runs
        status, stopped = await b.call("DELETE", "/contexts/shared")
        assert (status, stopped) == (200, {"status": "SUCCESS", "result": "Context stopped"})
        for peer in (a, b):
            assert (await peer.call("GET", "/contexts/shared"))[1]["state"] == "FINISHED"
        await wait_until(lambda: _none_alive(drivers), timeout_s=10, what="the driver gone")
        assert (await b.call("DELETE", "/contexts/shared"))[0] == 404

        # a reset through either server resets the contexts of both
        await _upload_and_create(a, "on-a")
        await _upload_and_create(b, "on-b")
        drivers = a.drivers() + b.drivers()
        assert len(drivers) == 2, "one driver per server"
        status, reset = await a.call("PUT", "/contexts?reset=reboot")
        assert (status, reset) == (200, {"status": "SUCCESS", "result": "Context reset"})
        for peer in (a, b):
            assert (await peer.call("GET", "/contexts"))[1] == []
            for name in ("on-a", "on-b"):
                assert (await peer.call("GET", f"/contexts/{name}"))[1]["state"] == "FINISHED"
        await wait_until(lambda: _none_alive(drivers), timeout_s=10, what="both drivers gone")

        assert await b.server.stop(signal.SIGTERM) == 0
        assert await a.server.stop(signal.SIGTERM) == 0


async def test_a_live_server_adopts_the_drivers_of_a_killed_one_and_their_jobs_finish_once(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    async with callback_listener() as (listener, url):
        with two_servers(tmp_path, fresh_postgres_url) as (a, b):
            driver_log = await _started_with_a_context_on_a(a, b, "survivor")
            drivers = a.drivers()
            path = (
                f"/jobs?appName=examples&classPath={SLEEP}&context=survivor&callbackUrl={quote(url, safe='')}"
            )
            status, submitted = await b.call("POST", path, "sleep.seconds = 4")
            assert status == 202
            await b.wait_job(submitted["jobId"], "RUNNING")

            assert await a.server.stop(signal.SIGKILL) == -signal.SIGKILL
            killed_at = time.monotonic()
            assert a.drivers() == drivers, "the driver outlives its crashed server"

            finished = await b.wait_job(submitted["jobId"], "FINISHED")
            assert finished["result"] == 4.0
            assert (await b.call("GET", "/contexts/survivor"))[1]["state"] == "RUNNING"
            assert time.monotonic() - killed_at < 2 + 15, "adopted within peers.timeout + reattach-grace"
            status, echoed = await b.call(
                "POST", f"/jobs?appName=examples&classPath={ECHO}&context=survivor&sync=true", '{"input": 9}'
            )
            assert (status, echoed["result"]) == (200, 9)
            assert a.drivers() == drivers, "the same driver goes on; none was launched"
            await wait_until(lambda: _received(listener, 1), timeout_s=10, what="the callback")
            assert "rejoined the job server" in driver_log.read_text()

            assert await b.server.stop(signal.SIGTERM) == 0
            assert [body["jobId"] for body in listener.received] == [submitted["jobId"]], "one callback"
            assert not a.drivers(), "the adopter's stop stops the adopted driver too"


async def test_with_three_servers_the_driver_of_a_killed_one_finds_the_one_that_adopts_it(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    names = ("server-a", "server-b", "server-c")
    with peer_group(tmp_path, fresh_postgres_url, names) as (a, b, c):
        for peer in (a, b, c):
            await peer.server.start(peer.base_url)
        context = await _upload_and_create(a, "three")
        driver_log = a.work_dir / "logs" / f"{context['id']}.log"

        async def told_of_all() -> bool:  # its list: server-a, then the other two
            return await _logged(driver_log, "servers this driver may go to") and any(
                line.count("tcp://") == 3 for line in driver_log.read_text().splitlines()
            )

        await wait_until(told_of_all, timeout_s=10, what="the driver told of server-b and server-c")
        [driver] = a.drivers()
        sleep = f"/jobs?appName=examples&classPath={SLEEP}&context=three"
        status, submitted = await c.call("POST", sleep, "sleep.seconds = 3")
        assert status == 202, submitted
        await c.wait_job(submitted["jobId"], "RUNNING")

        # Whichever of the two adopts the context, the driver tries the servers in turn (the other
        # refuses it) until it finds that one; its job finishes once, seen alike from both.
        assert await a.server.stop(signal.SIGKILL) == -signal.SIGKILL
        on_b = await b.wait_job(submitted["jobId"], "FINISHED")
        assert on_b["result"] == 3.0 and await c.wait_job(submitted["jobId"], "FINISHED") == on_b
        echo = f"/jobs?appName=examples&classPath={ECHO}&context=three&sync=true&timeout=10"
        for peer, value in ((b, 1), (c, 2)):
            status, echoed = await peer.call("POST", echo, json.dumps({"input": value}))
            assert (status, echoed["result"]) == (200, value), echoed
        assert a.drivers() == [driver], "the same driver goes on; none was launched"
        adopters = [peer.name for peer in (b, c) if await _logged(peer.log_file, "driver_rejoined")]
        assert len(adopters) == 1, adopters

        assert await b.server.stop(signal.SIGTERM) == 0
        assert await c.server.stop(signal.SIGTERM) == 0
        assert not a.drivers(), "the adopter's stop stops the adopted driver"


async def test_a_frozen_server_that_wakes_up_after_the_adoption_leaves_the_drivers_to_the_adopter(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    quick_stops = {"spark.jobserver.context-deletion-timeout": "3s"}
    with two_servers(tmp_path, fresh_postgres_url, **quick_stops) as (a, b):
        await _started_with_a_context_on_a(a, b, "frozen")
        drivers = a.drivers()
        # A request forwarded to the frozen server waits timeout + context-deletion-timeout + 10 s.
        job = f"/jobs?appName=examples&classPath={ECHO}&context=frozen&sync=true&timeout=2"

        await _frozen_until_adopted(a, b, job)
        status, echoed = await a.call("POST", job, '{"input": 2}')
        assert (status, echoed["result"]) == (200, 2), "forwarded to server-b now"
        assert a.drivers() == drivers, "server-a did not kill the driver it let go of"
        assert (await a.call("GET", "/contexts/frozen"))[1]["state"] == "RUNNING"

        assert await a.server.stop(signal.SIGTERM) == 0
        assert a.drivers() == drivers, "server-a's stop leaves server-b's context alone"
        assert await b.server.stop(signal.SIGTERM) == 0
        assert not a.drivers()


async def test_a_context_that_comes_back_to_a_server_that_let_go_of_it_has_its_slots_free(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    one_slot = {"spark.jobserver.max-jobs-per-context": 1}
    with two_servers(tmp_path, fresh_postgres_url, **one_slot) as (a, b):
        await _started_with_a_context_on_a(a, b, "returning")
        # server-a admits a job into the context's one slot; the job ends while server-b has it.
        sleep = f"/jobs?appName=examples&classPath={SLEEP}&context=returning"
        status, submitted = await a.call("POST", sleep, "sleep.seconds = 2")
        assert status == 202, submitted
        await a.wait_job(submitted["jobId"], "RUNNING")
        echo = f"/jobs?appName=examples&classPath={ECHO}&context=returning&sync=true&timeout=5"
        await _frozen_until_adopted(a, b, echo)
        assert (await b.wait_job(submitted["jobId"], "FINISHED"))["result"] == 2.0

        # server-b dies: the context comes back to server-a, whose slot must be free. Before, the
        # job it had admitted still held it there, and every job got 503 "no slots available".
        assert await b.server.stop(signal.SIGKILL) == -signal.SIGKILL
        await wait_until(lambda: _serves(a, echo), timeout_s=60, what="server-a running the context again")
        status, echoed = await a.call("POST", echo, '{"input": 3}')
        assert (status, echoed["result"]) == (200, 3)
        assert await a.server.stop(signal.SIGTERM) == 0
        assert not a.drivers()


async def test_a_forwarded_request_keeps_its_caller_and_a_client_cannot_pose_as_a_peer(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('secret-a')}\nbob:{hash_password('secret-b')}\n")
    auth = {
        "spark.jobserver.auth.mechanisms": ["basic"],
        "spark.jobserver.auth.basic.users-file": str(users),
        "spark.jobserver.auth.permissions.users": {"alice": ["*"], "bob": ["jobs:read"]},
        "spark.jobserver.auth.permissions.default": [],
    }
    alice = {"Authorization": "Basic " + base64.b64encode(b"alice:secret-a").decode()}
    bob = {"Authorization": "Basic " + base64.b64encode(b"bob:secret-b").decode()}
    with two_servers(tmp_path, fresh_postgres_url, **auth) as (a, b):
        await a.server.start(a.base_url)
        await b.server.start(b.base_url)
        await _upload_and_create(a, "guarded", alice)
        job = f"/jobs?appName=examples&classPath={ECHO}&context=guarded&sync=true"

        status, echoed = await b.call("POST", job, '{"input": 1}', alice)
        assert (status, echoed["result"]) == (200, 1)
        assert (await a.call("GET", f"/jobs/{echoed['jobId']}", headers=alice))[1]["user"] == "alice"
        assert (await b.call("POST", job, '{"input": 2}', bob))[0] == 403, "checked where it was called"
        assert (await b.call("POST", job, '{"input": 3}'))[0] == 401

        forged = {
            "X-Jobserver-Forwarded-By": "server-b",
            "X-Jobserver-Forwarded-Time": str(int(time.time() * 1000)),
            "X-Jobserver-Forwarded-Caller": json.dumps({"user": "mallory", "actsAs": ["*"]}),
            "X-Jobserver-Forwarded-Signature": "0" * 64,
        }
        for headers in (forged, {**forged, **bob}):
            status, body = await a.call("POST", job, '{"input": 4}', headers)
            assert status == 403, body
        assert (await a.call("DELETE", "/contexts/guarded", headers=forged))[0] == 403
        assert (await b.call("GET", "/contexts/guarded", headers=alice))[1]["state"] == "RUNNING"

        assert await b.server.stop(signal.SIGTERM) == 0
        assert await a.server.stop(signal.SIGTERM) == 0
        assert not a.drivers()


async def test_an_idle_pooled_driver_of_a_killed_server_joins_the_adopters_pool_and_serves(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    pool = {"warm": {"size": 1, "max-jobs": 10, "idle-timeout": "60s"}}
    with two_servers(tmp_path, fresh_postgres_url, **{"spark.jobserver.pool": pool}) as (a, b):
        await a.server.start(a.base_url)
        await b.server.start(b.base_url)
        headers = {"Content-Type": "text/x-python"}
        assert (await a.call("POST", "/binaries/pid_jobs", PID_JOB, headers))[0] == 201
        a_pool = await _idle_pool(a, 1)
        b_pool = await _idle_pool(b, 1)
        [adopted] = a_pool["contextIds"]
        [pooled_pid] = processes_mentioning(adopted)

        assert await a.server.stop(signal.SIGKILL) == -signal.SIGKILL
        both = await _idle_pool(b, 2)  # its own, and server-a's, which outlived its server
        assert set(both["contextIds"]) == {adopted, *b_pool["contextIds"]}
        assert processes_mentioning(adopted) == [pooled_pid], "the same driver, not a new one"

        # Two ad-hoc jobs at once: each takes one of the two warm drivers.
        path = "/jobs?cp=pid_jobs&mainClass=pid_jobs:pid&sync=true&timeout=30"
        answers = await asyncio.gather(*(b.call("POST", path, "wait.seconds = 2") for _ in range(2)))
        assert [status for status, _ in answers] == [200, 200], answers
        ran_on = {body["result"] for _, body in answers}
        assert len(ran_on) == 2 and pooled_pid in ran_on

        assert await b.server.stop(signal.SIGTERM) == 0
        assert not processes_mentioning(adopted), "the adopter's stop stops the adopted pooled driver"


# A single-module binary: the job says which driver process ran it, after a pause that keeps its
# driver busy while a second job is taken.
PID_JOB = b"""import os
import time


def pid(spark, config):
    time.sleep(float(config.get("wait.seconds")))
    return os.getpid()
"""


async def _idle_pool(peer: Peer, idle: int) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        status, pools = await peer.call("GET", "/pools")
        assert status == 200, pools
        [warm] = pools
        quiet = warm["busy"] == warm["launching"] == warm.get("rejoining", 0) == 0
        return warm if warm["idle"] == idle and quiet and len(warm["contextIds"]) == idle else None

    return await wait_until(settled, timeout_s=30, what=f"{idle} idle pooled driver(s) on {peer.name}")


async def _streamed(
    peer: Peer, method: str, path: str, data: str | None = None
) -> tuple[dict[str, Any], str]:
    """An answer sent with chunked transfer (no Content-Length), parsed, and its job id."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, peer.base_url + path, data=data) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in response.headers
        body = json.loads(await response.read())
    return body, body["jobId"]


async def _none_alive(pids: list[int]) -> bool:
    alive = set(processes_mentioning("")) & set(pids)
    return not alive


async def _logged(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


async def _received(listener: CallbackListener, count: int) -> bool:
    return len(listener.received) >= count
