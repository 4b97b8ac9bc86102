"""A server that restarts (after a crash, or stopped with --keep-contexts) re-attaches the drivers
it launched: contexts stay RUNNING, jobs go on, results reach the store (and callbacks) once.

The real `jobserver` command in a child process, with stand-in spark-submits (tests/fakes/light:
the real driver code, no JVM).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest_asyncio

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


class Site:
    def __init__(self, tmp_path: Path, extra: dict[str, Any] | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.work_dir = tmp_path / "work"
        settings = {
            "spark.jobserver.port": self.port,
            "spark.jobserver.work-dir": str(self.work_dir),
            "spark.home": str(FAKE_SPARK_HOMES / "light"),
            "spark.jobserver.heartbeat.interval": "200ms",
            "spark.jobserver.heartbeat.timeout": "3s",
            "spark.jobserver.reattach-grace": "10s",
            "spark.jobserver.driver.server-silence-grace": "30s",
            "spark.jobserver.callback.allowed-hosts": ["127.0.0.1"],  # the tests' listener
            **(extra or {}),
        }
        config = tmp_path / "server.conf"
        config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
        self.server = ServerProcess(config, tmp_path / "server.log")

    async def call(self, method: str, path: str, data: Any = None, **headers: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base_url + path, data=data, headers=headers) as response,
        ):
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def job(self, job_id: str) -> dict[str, Any]:
        return (await self.call("GET", f"/jobs/{job_id}"))[1]

    async def wait_job(self, job_id: str, state: str, timeout_s: float = 30) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            job = await self.job(job_id)
            return job if job["status"] == state else None

        return await wait_until(reached, timeout_s=timeout_s, what=f"job {job_id} {state}")

    def drivers(self) -> list[int]:
        return processes_mentioning(str(self.work_dir))

    def driver_log(self, context_id: str) -> str:
        path = self.work_dir / "logs" / f"{context_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest_asyncio.fixture
async def callbacks() -> AsyncIterator[tuple[CallbackListener, str]]:
    async with callback_listener() as listening:
        yield listening


@contextlib.contextmanager
def _cleaned_up(deployment: Site) -> Iterator[Site]:
    try:
        yield deployment
    finally:
        deployment.server.kill_if_running()
        for pid in deployment.drivers():  # a failed test must not leave its drivers behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest_asyncio.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    with _cleaned_up(Site(tmp_path)) as deployment:
        yield deployment


async def _start_with_context(site: Site, name: str) -> dict[str, Any]:
    await site.server.start(site.base_url)
    status, _ = await site.call(
        "POST",
        "/binaries/examples",
        EXAMPLES_WHEEL.read_bytes(),
        **{"Content-Type": "application/python-wheel"},
    )
    assert status == 201
    status, body = await site.call("POST", f"/contexts/{name}")
    assert status == 200, body
    return (await site.call("GET", f"/contexts/{name}"))[1]


async def test_a_crashed_server_reattaches_its_driver_and_the_running_job_finishes_once(
    site: Site, callbacks: tuple[CallbackListener, str]
) -> None:
    listener, url = callbacks
    context = await _start_with_context(site, "survivor")
    drivers_before = site.drivers()
    path = f"/jobs?appName=examples&classPath={SLEEP}&context=survivor&callbackUrl={quote(url, safe='')}"
    status, submitted = await site.call("POST", path, "sleep.seconds = 3")
    assert status == 202
    await site.wait_job(submitted["jobId"], "RUNNING")

    assert await site.server.stop(signal.SIGKILL) == -signal.SIGKILL
    assert site.drivers() == drivers_before, "the driver outlives its crashed server"
    await site.server.start(site.base_url)

    assert (await site.call("GET", "/contexts/survivor"))[1]["state"] == "RUNNING"
    assert (await site.call("GET", "/contexts"))[1] == ["survivor"]
    finished = await site.wait_job(submitted["jobId"], "FINISHED")
    assert finished["result"] == 3.0
    assert site.drivers() == drivers_before, "the same driver went on; none was launched"
    # the context serves new jobs through the re-attached driver
    status, echoed = await site.call(
        "POST", f"/jobs?appName=examples&classPath={ECHO}&context=survivor&sync=true", '{"input": 7}'
    )
    assert (status, echoed["result"]) == (200, 7)
    await wait_until(lambda: _received(listener, 1), timeout_s=10, what="the callback")

    assert await site.server.stop(signal.SIGTERM) == 0
    assert [body["jobId"] for body in listener.received] == [submitted["jobId"]], "exactly one callback"
    assert listener.received[0]["result"] == 3.0
    assert not site.drivers(), "a graceful stop still stops every driver"
    assert "rejoined the job server" in site.driver_log(context["id"])


async def test_a_sync_answer_given_just_before_a_stop_is_stored_as_given(tmp_path: Path) -> None:
    # The store write would come a minute after the answer: the stop must not wait for it, nor
    # end the context (which makes its unstored jobs ERROR) before making it.
    with _cleaned_up(Site(tmp_path, {"spark.jobserver.finish-store-delay": "60s"})) as site:
        await _start_with_context(site, "brief")
        status, echoed = await site.call(
            "POST", f"/jobs?appName=examples&classPath={ECHO}&context=brief&sync=true", '{"input": 5}'
        )
        assert (status, echoed["result"]) == (200, 5)
        assert (await site.job(echoed["jobId"]))["status"] == "FINISHED"  # from memory until stored
        assert await site.server.stop(signal.SIGTERM) == 0
        await site.server.start(site.base_url)
        stored = await site.job(echoed["jobId"])
        assert (stored["status"], stored["result"]) == ("FINISHED", 5)
        assert await site.server.stop(signal.SIGTERM) == 0
        assert not site.drivers()


async def test_a_result_that_came_while_no_server_listened_is_recorded_after_the_restart(
    site: Site, callbacks: tuple[CallbackListener, str]
) -> None:
    listener, url = callbacks
    context = await _start_with_context(site, "patient")
    path = f"/jobs?appName=examples&classPath={SLEEP}&context=patient&callbackUrl={quote(url, safe='')}"
    _, submitted = await site.call("POST", path, "sleep.seconds = 1")
    await site.wait_job(submitted["jobId"], "RUNNING")
    await site.server.stop(signal.SIGKILL)

    await wait_until(
        lambda: _logged(site, context["id"], f"job {submitted['jobId']} ended: job_finished"),
        timeout_s=15,
        what="the job ending while no server listens",
    )
    await site.server.start(site.base_url)

    finished = await site.wait_job(submitted["jobId"], "FINISHED")
    assert finished["result"] == 1.0
    await wait_until(lambda: _received(listener, 1), timeout_s=10, what="the callback")
    assert (await site.call("GET", "/contexts/patient"))[1]["state"] == "RUNNING"
    assert await site.server.stop(signal.SIGTERM) == 0
    assert [body["result"] for body in listener.received] == [1.0], "exactly one callback"
    assert "sending 1 held job report(s) again" in site.driver_log(context["id"])
    assert not site.drivers()


async def test_an_adhoc_job_reattached_after_a_crash_still_ends_its_context(site: Site) -> None:
    await site.server.start(site.base_url)
    headers = {"Content-Type": "application/python-wheel"}
    assert (await site.call("POST", "/binaries/examples", EXAMPLES_WHEEL.read_bytes(), **headers))[0] == 201
    _, submitted = await site.call("POST", f"/jobs?appName=examples&classPath={SLEEP}", "sleep.seconds = 2")
    await site.wait_job(submitted["jobId"], "RUNNING")
    assert site.drivers()

    await site.server.stop(signal.SIGKILL)
    await site.server.start(site.base_url)

    assert (await site.wait_job(submitted["jobId"], "FINISHED"))["result"] == 2.0
    await wait_until(lambda: _no_drivers(site), timeout_s=15, what="the ad-hoc context's driver ending")

    async def no_context_listed() -> bool:  # its end is stored once the server sees the exit
        return (await site.call("GET", "/contexts"))[1] == []

    await wait_until(no_context_listed, timeout_s=15, what="the ad-hoc context to end")
    assert await site.server.stop(signal.SIGTERM) == 0


async def test_stop_with_keep_contexts_leaves_drivers_and_queued_jobs_for_the_next_server(
    tmp_path: Path,
) -> None:
    site = Site(tmp_path, {"spark.jobserver.max-jobs-per-context": 1})
    try:
        await _start_with_context(site, "kept")
        drivers_before = site.drivers()
        base = f"/jobs?appName=examples&classPath={SLEEP}&context=kept"
        _, running = await site.call("POST", base, "sleep.seconds = 2")
        await site.wait_job(running["jobId"], "RUNNING")
        _, queued = await site.call("POST", base, "sleep.seconds = 0.5")
        assert (await site.job(queued["jobId"]))["status"] == "STARTED"

        assert await site.server.stop(signal.SIGUSR1) == 0  # what bin/server_stop.sh --keep-contexts sends
        assert site.drivers() == drivers_before
        await site.server.start(site.base_url)

        assert (await site.call("GET", "/contexts/kept"))[1]["state"] == "RUNNING"
        assert (await site.wait_job(running["jobId"], "FINISHED"))["result"] == 2.0
        # the job that waited in the old server's queue was not lost: it runs after the first
        done = await site.wait_job(queued["jobId"], "FINISHED")
        assert done["result"] == 0.5
        status, body = await site.call("DELETE", "/contexts/kept")
        assert (status, body["status"]) == (200, "SUCCESS")
        assert (await site.call("GET", "/contexts/kept"))[1]["state"] == "FINISHED"
        await wait_until(lambda: _no_drivers(site), timeout_s=10, what="the adopted driver gone")
        assert await site.server.stop(signal.SIGTERM) == 0
    finally:
        site.server.kill_if_running()


async def test_an_orphaned_driver_exits_by_itself_and_its_context_ends_after_the_grace(
    tmp_path: Path,
) -> None:
    site = Site(
        tmp_path,
        {"spark.jobserver.reattach-grace": "1s", "spark.jobserver.driver.server-silence-grace": "2s"},
    )
    try:
        await _start_with_context(site, "gone")
        _, submitted = await site.call(
            "POST", f"/jobs?appName=examples&classPath={SLEEP}&context=gone", "sleep.seconds = 60"
        )
        await site.wait_job(submitted["jobId"], "RUNNING")
        await site.server.stop(signal.SIGKILL)
        # No server: the driver gives up after server-silence-grace, so no Spark application is
        # left running for a gateway that never comes back.
        await wait_until(lambda: _no_drivers(site), timeout_s=20, what="the orphaned driver exiting")
        await site.server.start(site.base_url)

        async def ended() -> dict[str, Any] | None:
            context = (await site.call("GET", "/contexts/gone"))[1]
            return context if context["state"] == "ERROR" else None

        context = await wait_until(ended, timeout_s=10, what="context ERROR after the grace")
        assert context["error"] == "Reconnect failed after Jobserver restart"
        job = await site.wait_job(submitted["jobId"], "ERROR", timeout_s=5)
        assert "Reconnect failed after Jobserver restart" in job["result"]["message"]
        assert (await site.call("GET", "/contexts"))[1] == []
        assert await site.server.stop(signal.SIGTERM) == 0
    finally:
        site.server.kill_if_running()


async def _received(listener: CallbackListener, count: int) -> bool:
    return len(listener.received) >= count


async def _logged(site: Site, context_id: str, text: str) -> bool:
    return text in site.driver_log(context_id)


async def _no_drivers(site: Site) -> bool:
    return not site.drivers()


async def test_a_callback_pending_when_the_server_crashes_is_delivered_by_its_next_process(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there until the server has crashed
    url = f"http://127.0.0.1:{port}/done"
    retrying = {"spark.jobserver.callback.attempts": 1000, "spark.jobserver.callback.retry-interval": "100ms"}
    with _cleaned_up(Site(tmp_path, retrying)) as site:
        await _start_with_context(site, "calling")
        path = f"/jobs?appName=examples&classPath={ECHO}&context=calling&sync=true"
        status, done = await site.call(
            "POST", f"{path}&callbackUrl={quote(url, safe='')}", '{"input": {"k": "v"}}'
        )
        assert (status, done["result"]) == (200, {"k": "v"})

        async def retrying_in_log() -> bool:
            return (tmp_path / "server.log").read_text().count("callback_failed") >= 2

        await wait_until(retrying_in_log, timeout_s=15, what="failed callback attempts")
        assert await site.server.stop(signal.SIGKILL) == -signal.SIGKILL  # its lease is still held

        async with callback_listener(port=port) as (receiver, _):
            await site.server.start(site.base_url)  # the same server id: it takes its own back

            async def delivered() -> bool:
                return bool(receiver.received)

            await wait_until(delivered, timeout_s=15, what="the callback delivered after the crash")
            assert receiver.received == [{"jobId": done["jobId"], "result": {"k": "v"}}]
            assert (await site.call("DELETE", "/contexts/calling"))[0] == 200
            assert await site.server.stop() == 0
            assert receiver.attempts == 1
