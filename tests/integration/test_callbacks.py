"""callbackUrl: the job's outcome is POSTed to a real HTTP listener, with retries; none for kills.
A callback not delivered yet is stored: it outlives the server, and is removed when out of attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest_asyncio

from tests.support import (
    FAKE_SPARK_HOMES,
    Api,
    CallbackListener,
    callback_listener,
    free_port,
    running_server,
    stored_callbacks,
    wait_until,
)

ECHO = "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&sync=true"


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[tuple[CallbackListener, str]]:
    async with callback_listener(failures=1) as listening:
        yield listening


async def test_outcomes_are_posted_with_retries_and_kills_are_not(
    tmp_path: Path, listener: tuple[CallbackListener, str]
) -> None:
    receiver, url = listener
    overrides = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.callback.retry-interval": "100ms",
        "spark.jobserver.callback.allowed-hosts": ["127.0.0.1"],  # the listener's
    }
    async with running_server(tmp_path, overrides) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/calling"))[0] == 200
        base = f"/jobs?appName=examples&context=calling&callbackUrl={quote(url, safe='')}"

        _, killed, _ = await api.call(
            "POST", f"{base}&classPath=example_jobs.sleep_job.PythonSleepJob", data="sleep.seconds = 30"
        )
        await api.wait_job_state(killed["jobId"], "RUNNING")
        assert (await api.call("DELETE", f"/jobs/{killed['jobId']}"))[0] == 200

        _, done, _ = await api.call(
            "POST", f"{base}&classPath=example_jobs.echo.EchoJob&sync=true", data='{"input": {"k": [1, 2]}}'
        )
        _, failed, _ = await api.call("POST", f"{base}&classPath=example_jobs.failing_job.FailingRunJob")

        async def both_received() -> bool:
            return len(receiver.received) >= 2

        await wait_until(both_received, timeout_s=15, what="two callbacks delivered")
        by_job = {body["jobId"]: body for body in receiver.received}
        assert by_job[done["jobId"]] == {"jobId": done["jobId"], "result": {"k": [1, 2]}}
        error = by_job[failed["jobId"]]
        assert (error["status"], error["result"]["message"]) == ("ERROR", "Deliberate failure")
        assert receiver.attempts == 3  # the first attempt was refused and retried
        assert killed["jobId"] not in by_job


async def test_callbacks_to_the_server_itself_or_private_networks_are_refused(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"spark.home": str(FAKE_SPARK_HOMES / "light")}) as api:
        await api.upload("examples")
        for target in (
            "http://127.0.0.1:8090/data?reset=reboot",
            "http://169.254.169.254/latest",
            "http://10.1.2.3/",
        ):
            echo = "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob"
            path = f"{echo}&callbackUrl={quote(target, safe='')}"
            status, body, _ = await api.call("POST", path)
            assert status == 400, (target, body)
            assert "private, loopback or link-local" in body["result"]
        assert (await api.call("GET", "/jobs"))[1] == []  # nothing was started


async def echo_with_callback(api: Api, url: str) -> str:
    """Run an EchoJob with ``url`` as its callbackUrl, to its end; its job id."""
    await api.upload("examples")
    status, done, _ = await api.call(
        "POST", f"{ECHO}&callbackUrl={quote(url, safe='')}", data='{"input": {"k": "v"}}'
    )
    assert (status, done["result"]) == (200, {"k": "v"}), done
    return str(done["jobId"])


def light_settings(**callback: Any) -> dict[str, Any]:
    return {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.server-id": "restarting-server",
        "spark.jobserver.callback.allowed-hosts": ["127.0.0.1"],
        **{f"spark.jobserver.callback.{key.replace('_', '-')}": value for key, value in callback.items()},
    }


async def test_a_callback_pending_when_the_server_stops_is_delivered_after_a_restart(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there until the server has stopped
    url = f"http://127.0.0.1:{port}/done"
    overrides = light_settings(attempts=1000, retry_interval="100ms")
    async with running_server(tmp_path, overrides) as api:
        job_id = await echo_with_callback(api, url)

        async def attempted() -> bool:
            return any(pending.attempts >= 2 for pending in await stored_callbacks(api.settings, tmp_path))

        await wait_until(attempted, timeout_s=15, what="failed attempts stored")

    async with callback_listener(port=port) as (receiver, _), running_server(tmp_path, overrides) as api:

        async def delivered() -> bool:
            return bool(receiver.received) and not await stored_callbacks(api.settings, tmp_path)

        await wait_until(delivered, timeout_s=15, what="the callback delivered and removed")
        assert receiver.received == [{"jobId": job_id, "result": {"k": "v"}}]
        assert receiver.attempts == 1


async def test_a_callback_out_of_attempts_is_removed(tmp_path: Path) -> None:
    overrides = light_settings(attempts=2, retry_interval="50ms")
    async with callback_listener(failures=1000) as (receiver, url):
        async with running_server(tmp_path, overrides) as api:
            await echo_with_callback(api, url)

            async def given_up() -> bool:
                return receiver.attempts == 2 and not await stored_callbacks(api.settings, tmp_path)

            await wait_until(given_up, timeout_s=15, what="two attempts, then the callback removed")

        async with running_server(tmp_path, overrides) as api:  # nothing left to take over
            assert await stored_callbacks(api.settings, tmp_path) == []
        assert (receiver.attempts, receiver.received) == (2, [])
