"""Workflows outlive their server: after a restart that keeps the drivers the new server process
drives them on, and the workflows of a server that never comes back are adopted by the peer that
adopts its contexts, and finish there. Each step's job runs once.

The real `jobserver` command in child processes (a stop must be real), with stand-in spark-submits
(tests/fakes/light: the real driver code, no JVM).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.test_peer_servers import two_servers
from tests.support import (
    EXAMPLES_WHEEL,
    FAKE_SPARK_HOMES,
    ServerProcess,
    free_port,
    processes_mentioning,
    wait_until,
)

SLEEP = "example_jobs.sleep_job.PythonSleepJob"
ECHO = "example_jobs.echo.EchoJob"
JSON = {"Content-Type": "application/json"}


def long_then_short(context: str, seconds: float) -> str:
    """A step that runs for ``seconds``, then one that echoes its result."""
    base = {"appName": "examples", "context": context}
    steps = [
        {"name": "long", "job": {**base, "classPath": SLEEP, "config": {"sleep": {"seconds": seconds}}}},
        {
            "name": "short",
            "after": ["long"],
            "job": {**base, "classPath": ECHO, "config": {"input": {"slept": "${steps.long.result}"}}},
        },
    ]
    return json.dumps({"name": "survivor", "steps": steps})


async def call(base_url: str, method: str, path: str, data: Any = None) -> tuple[int, Any]:
    headers = JSON if isinstance(data, str) else {"Content-Type": "application/python-wheel"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base_url + path, data=data, headers=headers) as response,
    ):
        return response.status, await response.json()


async def start_workflow(base_url: str, context: str, seconds: float) -> tuple[str, str]:
    """The workflow's id and its first step's job id, once that job runs."""
    status, started = await call(base_url, "POST", "/workflows", long_then_short(context, seconds))
    assert status == 202, started

    async def first_job_running() -> str | None:
        body = (await call(base_url, "GET", f"/workflows/{started['workflowId']}"))[1]
        job_id = body["steps"][0].get("jobId")
        if job_id is None:
            return None
        return job_id if (await call(base_url, "GET", f"/jobs/{job_id}"))[1]["status"] == "RUNNING" else None

    return started["workflowId"], await wait_until(first_job_running, timeout_s=15, what="the first step")


async def finished_once(base_url: str, workflow_id: str, long_job: str, seconds: float) -> dict[str, Any]:
    """The workflow once it ended: FINISHED, its first step's job the one that ran before, each
    step's job the only one of its class."""

    async def ended() -> dict[str, Any] | None:
        body = (await call(base_url, "GET", f"/workflows/{workflow_id}"))[1]
        return body if body["state"] != "RUNNING" else None

    done = await wait_until(ended, timeout_s=30, what="the workflow's end")
    assert done["state"] == "FINISHED", done
    steps = {step["name"]: step for step in done["steps"]}
    assert steps["long"]["jobId"] == long_job and steps["long"]["state"] == "FINISHED"
    short = (await call(base_url, "GET", f"/jobs/{steps['short']['jobId']}"))[1]
    assert (short["status"], short["result"]) == ("FINISHED", {"slept": seconds})
    jobs = (await call(base_url, "GET", "/jobs"))[1]
    assert sorted(job["jobId"] for job in jobs) == sorted([long_job, short["jobId"]]), "one job per step"
    return done


@contextlib.contextmanager
def one_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str, Path]]:
    port = free_port()
    work_dir = tmp_path / "work"
    settings = {
        "spark.jobserver.port": port,
        "spark.jobserver.work-dir": str(work_dir),
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.heartbeat.interval": "200ms",
        "spark.jobserver.heartbeat.timeout": "3s",
        "spark.jobserver.reattach-grace": "10s",
    }
    config = tmp_path / "server.conf"
    config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
    server = ServerProcess(config, tmp_path / "server.log")
    try:
        yield server, f"http://127.0.0.1:{port}", work_dir
    finally:
        server.kill_if_running()
        for pid in processes_mentioning(str(work_dir)):  # a failed test leaves no driver behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_a_workflow_goes_on_after_a_restart_that_keeps_its_drivers(tmp_path: Path) -> None:
    with one_server(tmp_path) as (server, base_url, work_dir):
        await server.start(base_url)
        assert (await call(base_url, "POST", "/binaries/examples", EXAMPLES_WHEEL.read_bytes()))[0] == 201
        assert (await call(base_url, "POST", "/contexts/kept"))[0] == 200
        drivers = processes_mentioning(str(work_dir))
        workflow_id, long_job = await start_workflow(base_url, "kept", 2)

        assert await server.stop(signal.SIGUSR1) == 0  # bin/server_stop.sh --keep-contexts
        assert processes_mentioning(str(work_dir)) == drivers
        await server.start(base_url)

        done = await finished_once(base_url, workflow_id, long_job, 2)
        assert [step["state"] for step in done["steps"]] == ["FINISHED", "FINISHED"]
        assert processes_mentioning(str(work_dir)) == drivers, "the same driver ran both steps"
        assert await server.stop(signal.SIGTERM) == 0
        assert not processes_mentioning(str(work_dir))


async def test_the_workflow_of_a_server_that_never_returns_is_adopted_and_finishes_on_a_peer(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    with two_servers(tmp_path, fresh_postgres_url) as (a, b):
        await a.server.start(a.base_url)
        await b.server.start(b.base_url)
        assert (await call(a.base_url, "POST", "/binaries/examples", EXAMPLES_WHEEL.read_bytes()))[0] == 201
        assert (await call(a.base_url, "POST", "/contexts/flowing"))[0] == 200
        context = (await call(a.base_url, "GET", "/contexts/flowing"))[1]
        driver_log = a.work_dir / "logs" / f"{context['id']}.log"

        async def told_of_b() -> bool:
            return "servers this driver may go to" in driver_log.read_text(errors="replace")

        await wait_until(told_of_b, timeout_s=10, what="the driver told of server-b")
        drivers = a.drivers()
        workflow_id, long_job = await start_workflow(a.base_url, "flowing", 3)

        assert await a.server.stop(signal.SIGKILL) == -signal.SIGKILL
        killed_at = time.monotonic()
        done = await finished_once(b.base_url, workflow_id, long_job, 3)
        assert time.monotonic() - killed_at < 2 + 15, "adopted within peers.timeout + reattach-grace"
        short = (await call(b.base_url, "GET", f"/jobs/{done['steps'][1]['jobId']}"))[1]
        assert short["contextId"] == context["id"], "the next step ran in the adopted context"
        assert a.drivers() == drivers, "the same driver went on; none was launched"
        assert "workflow_adopted" in b.log_file.read_text()

        assert await b.server.stop(signal.SIGTERM) == 0
        assert not a.drivers()


async def test_steps_in_a_context_another_server_runs_are_sent_there_and_killed_there(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    quick = {"spark.jobserver.workflows.reconcile-interval": "300ms"}
    with two_servers(tmp_path, fresh_postgres_url, **quick) as (a, b):
        await a.server.start(a.base_url)
        await b.server.start(b.base_url)
        assert (await call(a.base_url, "POST", "/binaries/examples", EXAMPLES_WHEEL.read_bytes()))[0] == 201
        assert (await call(a.base_url, "POST", "/contexts/on-a"))[0] == 200
        context = (await call(a.base_url, "GET", "/contexts/on-a"))[1]

        # Posted to server-b, run in server-a's context: both steps' jobs go to server-a.
        status, started = await call(b.base_url, "POST", "/workflows", long_then_short("on-a", 0.5))
        assert status == 202, started
        done = await finished_once(
            b.base_url, started["workflowId"], await _first_job(b.base_url, started), 0.5
        )
        for step in done["steps"]:
            job = (await call(a.base_url, "GET", f"/jobs/{step['jobId']}"))[1]
            assert job["contextId"] == context["id"]

        # A kill through server-b kills the running step's job where it runs.
        status, started = await call(b.base_url, "POST", "/workflows", long_then_short("on-a", 60))
        assert status == 202, started
        long_job = await _first_job(b.base_url, started)
        await wait_until(
            lambda: _job_in(a.base_url, long_job, "RUNNING"), timeout_s=15, what="the long step running on a"
        )
        status, killed = await call(b.base_url, "DELETE", f"/workflows/{started['workflowId']}")
        assert (status, killed["state"]) == (200, "KILLED"), killed
        await wait_until(lambda: _job_in(a.base_url, long_job, "KILLED"), timeout_s=15, what="its job killed")
        steps = (await call(b.base_url, "GET", f"/workflows/{started['workflowId']}"))[1]["steps"]
        assert [step["state"] for step in steps] == ["KILLED", "KILLED"]
        assert "jobId" not in steps[1] or steps[1]["jobId"] is None, "the next step never started"

        assert await b.server.stop(signal.SIGTERM) == 0
        assert await a.server.stop(signal.SIGTERM) == 0


async def _first_job(base_url: str, started: dict[str, Any]) -> str:
    async def submitted() -> str | None:
        body = (await call(base_url, "GET", f"/workflows/{started['workflowId']}"))[1]
        job_id = body["steps"][0].get("jobId")
        return job_id if isinstance(job_id, str) else None

    return await wait_until(submitted, timeout_s=15, what="the first step's job")


async def _job_in(base_url: str, job_id: str, state: str) -> bool:
    status, job = await call(base_url, "GET", f"/jobs/{job_id}")
    return status == 200 and job["status"] == state
