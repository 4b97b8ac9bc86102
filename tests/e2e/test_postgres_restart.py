"""With the store in PostgreSQL, a restarted server (after SIGTERM or SIGKILL) tells the truth and
keeps what it can: after a crash its drivers rejoin it."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import (
    EXAMPLES_WHEEL,
    SPARK_TEST_OVERRIDES,
    ServerProcess,
    free_port,
    processes_mentioning,
    wait_until,
)

pytestmark = pytest.mark.spark

WORD_COUNT = "example_jobs.word_count.WordCountSparkSessionJob"
SLEEP = "example_jobs.sleep_job.SleepJob"


@dataclass
class Deployment:
    server: ServerProcess
    base_url: str
    work_dir: Path

    async def call(self, method: str, path: str, data: Any = None, headers: Any = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base_url + path, data=data, headers=headers) as response,
        ):
            body = (
                await response.json()
                if response.content_type == "application/json"
                else await response.text()
            )
            return response.status, body


@asynccontextmanager
async def deployment(tmp_path: Path, store_url: str) -> AsyncIterator[Deployment]:
    port = free_port()
    work_dir = tmp_path / "work"
    lines = [
        f"spark.jobserver.port = {port}",
        f'spark.jobserver.work-dir = "{work_dir}"',
        f'spark.jobserver.store.url = "{store_url}"',
        # A driver whose server died waits this long for a new one (default: minutes).
        "spark.jobserver.driver.server-silence-grace = 60s",
        "spark.jobserver.supervise.backoff = 200ms",
        *(f"{key} = {json.dumps(value)}" for key, value in SPARK_TEST_OVERRIDES.items()),
    ]
    config = tmp_path / "server.conf"
    config.write_text("\n".join(lines) + "\n")
    server = ServerProcess(config, tmp_path / "server.log")
    try:
        yield Deployment(server=server, base_url=f"http://127.0.0.1:{port}", work_dir=work_dir)
    finally:
        server.kill_if_running()


async def test_everything_answers_the_same_after_a_graceful_restart(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    async with deployment(tmp_path, fresh_postgres_url) as site:
        await site.server.start(site.base_url)
        headers = {"Content-Type": "application/python-wheel"}
        assert (await site.call("POST", "/binaries/examples", EXAMPLES_WHEEL.read_bytes(), headers))[0] == 201
        assert (await site.call("POST", "/contexts/durable"))[0] == 200
        path = f"/jobs?appName=examples&classPath={WORD_COUNT}&context=durable"
        status, sync = await site.call(
            "POST", path + "&sync=true&timeout=60", 'input.strings = ["a", "b", "a"]'
        )
        assert (status, sync["result"]) == (200, {"a": 2, "b": 1})
        before = {
            "binaries": (await site.call("GET", "/binaries"))[1],
            "jobs": (await site.call("GET", "/jobs"))[1],
            "job": (await site.call("GET", f"/jobs/{sync['jobId']}"))[1],
            "config": (await site.call("GET", f"/jobs/{sync['jobId']}/config"))[1],
        }

        assert await site.server.stop(signal.SIGTERM) == 0
        assert not processes_mentioning(str(site.work_dir)), "a graceful stop stops every driver"
        await site.server.start(site.base_url)

        assert (await site.call("GET", "/binaries"))[1] == before["binaries"]
        assert (await site.call("GET", "/jobs"))[1] == before["jobs"]
        assert (await site.call("GET", f"/jobs/{sync['jobId']}"))[1] == before["job"]
        assert before["job"]["result"] == {"a": 2, "b": 1}
        assert (await site.call("GET", f"/jobs/{sync['jobId']}/config"))[1] == before["config"]
        assert (await site.call("GET", "/contexts/durable"))[1]["state"] == "FINISHED"
        assert (await site.call("GET", "/jobs?status=RUNNING"))[1] == []
        await site.server.stop(signal.SIGTERM)


async def test_a_crashed_server_reattaches_its_supervised_driver_which_survives_its_own_death(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    """Real drivers: SIGKILL the server mid-job, start it again (the context RUNNING again, the job's
    result recorded once), then SIGKILL the driver (supervise relaunches it and reruns the job)."""
    async with deployment(tmp_path, fresh_postgres_url) as site:
        await site.server.start(site.base_url)
        headers = {"Content-Type": "application/python-wheel"}
        assert (await site.call("POST", "/binaries/examples", EXAMPLES_WHEEL.read_bytes(), headers))[0] == 201
        status, _ = await site.call("POST", "/contexts/durable?launcher.spark.driver.supervise=true")
        assert status == 200
        context_id = (await site.call("GET", "/contexts/durable"))[1]["id"]
        base = "/jobs?appName=examples&context=durable"
        _, done = await site.call("POST", f"{base}&classPath={WORD_COUNT}&sync=true", 'input.strings = ["z"]')
        _, running = await site.call("POST", f"{base}&classPath={SLEEP}", "sleep.seconds = 4")
        await wait_until(
            lambda: _state_is(site, running["jobId"], "RUNNING"), timeout_s=30, what="long job running"
        )

        await site.server.stop(signal.SIGKILL)
        driver_pids = processes_mentioning(context_id)
        assert driver_pids, "the driver outlives its crashed server"
        await site.server.start(site.base_url)

        assert (await site.call("GET", "/contexts/durable"))[1]["state"] == "RUNNING"
        await wait_until(
            lambda: _state_is(site, running["jobId"], "FINISHED"), timeout_s=60, what="job finishing"
        )
        assert (await site.call("GET", f"/jobs/{running['jobId']}"))[1]["result"] == 2 * 40
        assert (await site.call("GET", f"/jobs/{done['jobId']}"))[1]["result"] == {"z": 1}
        assert processes_mentioning(context_id) == driver_pids, "re-attached, not relaunched"

        _, rerun = await site.call("POST", f"{base}&classPath={SLEEP}", "sleep.seconds = 2")
        await wait_until(lambda: _state_is(site, rerun["jobId"], "RUNNING"), timeout_s=30, what="job running")
        for pid in driver_pids:
            os.kill(pid, signal.SIGKILL)
        await wait_until(
            lambda: _state_is(site, rerun["jobId"], "FINISHED"), timeout_s=120, what="rerun job finishing"
        )
        assert (await site.call("GET", f"/jobs/{rerun['jobId']}"))[1]["result"] == 2 * 20
        assert (await site.call("GET", "/contexts/durable"))[1]["state"] == "RUNNING"
        new_pids = processes_mentioning(context_id)
        assert new_pids and not set(new_pids) & set(driver_pids), "a new driver runs the context"
        assert (await site.call("GET", "/jobs?status=RUNNING"))[1] == []
        assert await site.server.stop(signal.SIGTERM) == 0
        assert not processes_mentioning(str(site.work_dir))


async def _state_is(site: Deployment, job_id: str, state: str) -> bool:
    return (await site.call("GET", f"/jobs/{job_id}"))[1]["status"] == state
