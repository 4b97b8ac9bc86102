"""callbackUrl: the job's outcome is POSTed to a real HTTP listener, with retries; none for kills."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest_asyncio

from tests.support import (
    FAKE_SPARK_HOMES,
    CallbackListener,
    callback_listener,
    running_server,
    wait_until,
)


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
