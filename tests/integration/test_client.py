"""The Python client (sync and asyncio) and ``jobserver-cli`` against a real server (stand-in
drivers, no JVM): what a scheduler's task or a shell user does, and what they get back."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from jobserver.auth.users_file import hash_password
from jobserver_client import JobFailed, JobServerClient, JobServerError
from jobserver_client.aio import AsyncJobServerClient
from tests.support import EXAMPLES_WHEEL, FAKE_SPARK_HOMES, Api, running_server, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

ECHO = "example_jobs.echo.EchoJob"
SLEEP = "example_jobs.sleep_job.PythonSleepJob"
FAILING = "example_jobs.failing_job.FailingRunJob"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    work_dir = tmp_path_factory.mktemp("client")
    users = work_dir.parent / "client-users"
    users.write_text(f"ops:{hash_password('secret', rounds=4)}\n")
    overrides = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.auth.mechanisms": ["basic"],
        "spark.jobserver.auth.basic.users-file": str(users),
        "spark.jobserver.auth.permissions.users": {"ops": ["*"]},
    }
    async with running_server(work_dir, overrides) as api:
        yield api


def url(api: Api) -> str:
    return str(api.session._base_url).rstrip("/")  # the test server's ephemeral address


def client(api: Api) -> JobServerClient:
    return JobServerClient(url(api), user="ops", password="secret")


async def test_sync_client_runs_a_job_from_upload_to_result(api: Api, tmp_path: Path) -> None:
    jobs = client(api)
    await asyncio.to_thread(jobs.upload_binary, "examples", EXAMPLES_WHEEL)
    assert (await asyncio.to_thread(jobs.binaries))["examples"]["binary-type"] == "Wheel"
    await asyncio.to_thread(jobs.create_context, "client-ctx", {"num-cpu-cores": 1})
    assert "client-ctx" in await asyncio.to_thread(jobs.contexts)

    submitted = await asyncio.to_thread(
        jobs.submit_job, ECHO, app_name="examples", context="client-ctx", config={"input": {"n": 1}}
    )
    assert submitted["status"] in ("STARTED", "RUNNING", "FINISHED")
    assert await asyncio.to_thread(jobs.result, submitted["jobId"], timeout_s=30) == {"n": 1}
    synced = await asyncio.to_thread(
        jobs.submit_job, ECHO, app_name="examples", context="client-ctx", config="input.x = 2", sync=True
    )
    assert (synced["status"], synced["result"]) == ("FINISHED", {"x": 2})
    assert (await asyncio.to_thread(jobs.job_config, synced["jobId"]))["input"] == {"x": 2}
    listed = await asyncio.to_thread(jobs.jobs, limit=5)
    assert synced["jobId"] in [job["jobId"] for job in listed]

    failing = await asyncio.to_thread(jobs.submit_job, FAILING, app_name="examples", context="client-ctx")
    with pytest.raises(JobFailed, match="Deliberate failure") as failed:
        await asyncio.to_thread(jobs.result, failing["jobId"], timeout_s=30)
    assert failed.value.report["status"] == "ERROR"

    data = tmp_path / "words.txt"
    data.write_text("a b")
    stored = await asyncio.to_thread(jobs.upload_data, "words.txt", data)
    assert stored in await asyncio.to_thread(jobs.data_files)
    await asyncio.to_thread(jobs.delete_data, stored)
    assert stored not in await asyncio.to_thread(jobs.data_files)

    with pytest.raises(JobServerError) as missing:
        await asyncio.to_thread(jobs.job, "no-such-job")
    assert missing.value.status == 404
    await asyncio.to_thread(jobs.delete_context, "client-ctx")
    assert "client-ctx" not in await asyncio.to_thread(jobs.contexts)


async def test_asyncio_client_submits_waits_and_kills(api: Api) -> None:
    async with AsyncJobServerClient(url(api), user="ops", password="secret") as jobs:
        await jobs.upload_binary("examples", EXAMPLES_WHEEL)
        await jobs.create_context("aio-ctx")
        sleeper = await jobs.submit_job(
            SLEEP, app_name="examples", context="aio-ctx", config="sleep.seconds = 30"
        )

        async def running() -> bool:
            return (await jobs.job(sleeper["jobId"]))["status"] == "RUNNING"

        await wait_until(running, what="the sleeping job to run")
        assert (await jobs.kill_job(sleeper["jobId"])) == {"status": "KILLED"}
        assert (await jobs.wait(sleeper["jobId"], timeout_s=30))["status"] == "KILLED"
        echo = await jobs.submit_job(ECHO, app_name="examples", context="aio-ctx", config={"input": "x"})
        assert await jobs.result(echo["jobId"], timeout_s=30) == "x"
        await jobs.delete_context("aio-ctx")
    async with AsyncJobServerClient(url(api), user="ops", password="wrong") as intruder:
        with pytest.raises(JobServerError) as refused:
            await intruder.jobs()
    assert refused.value.status == 401


async def cli(api: Api, *arguments: str, password: str = "secret") -> tuple[int, str, str]:
    environment = {
        **os.environ,
        "JOBSERVER_URL": url(api),
        "JOBSERVER_USER": "ops",
        "JOBSERVER_PASSWORD": password,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobserver_client.cli",
        *arguments,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_prints_tables_results_and_exits_by_the_jobs_end(api: Api) -> None:
    assert (await cli(api, "binaries", "upload", "examples", str(EXAMPLES_WHEEL)))[0] == 0
    code, out, _ = await cli(api, "binaries", "list")
    lines = out.splitlines()
    assert (code, lines[0].split()) == (0, ["NAME", "TYPE", "UPLOADED"])
    assert any(line.split()[:2] == ["examples", "Wheel"] for line in lines[2:])
    assert (await cli(api, "contexts", "create", "cli-ctx", "--set", "num-cpu-cores=1"))[0] == 0
    code, out, _ = await cli(api, "contexts", "list")
    assert code == 0 and any(line.split()[:2] == ["cli-ctx", "RUNNING"] for line in out.splitlines())

    submit = ("jobs", "submit", ECHO, "--app", "examples", "--context", "cli-ctx")
    code, out, _ = await cli(api, *submit, "--conf", "input.words = [a, b]", "--wait")
    assert (code, out) == (0, '{\n  "words": [\n    "a",\n    "b"\n  ]\n}\n')
    code, out, err = await cli(
        api, "jobs", "submit", FAILING, "--app", "examples", "--context", "cli-ctx", "--wait"
    )
    assert (code, out) == (1, "")
    assert "ended ERROR: Deliberate failure" in err
    code, out, _ = await cli(api, "jobs", "list", "--status", "ERROR")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["JOB", "STATUS", "CONTEXT"]
    assert all(line.split()[1] == "ERROR" for line in out.splitlines()[2:]) and len(out.splitlines()) > 2

    code, _, err = await cli(api, "jobs", "status", "no-such-job")
    assert code == 3 and "404" in err
    code, _, err = await cli(api, "contexts", "list", password="wrong")
    assert code == 3 and "401" in err
    assert (await cli(api, "contexts", "delete", "cli-ctx"))[0] == 0


async def test_cli_reads_a_jobs_config_from_stdin_and_json_lists(api: Api, tmp_path: Path) -> None:
    config = tmp_path / "job.conf"
    config.write_text('input { from = "file" }')
    await cli(api, "binaries", "upload", "examples", str(EXAMPLES_WHEEL))
    code, out, _ = await cli(
        api,
        "jobs",
        "submit",
        ECHO,
        "--app",
        "examples",
        "--config-file",
        str(config),
        "--sync",
        "--timeout",
        "60",
    )
    assert (code, out) == (0, '{\n  "from": "file"\n}\n')  # ad hoc: a context of its own
    code, out, _ = await cli(api, "--json", "jobs", "list", "--limit", "1")
    listed: Any = json.loads(out)
    assert code == 0 and listed[0]["status"] == "FINISHED"


PRINTER = b"""
import time


def main(spark, config):
    for index in range(3):
        print(f"line {index}")
        time.sleep(0.1)
    return "printed"
"""


async def test_clients_and_cli_read_and_follow_a_jobs_log_and_events(api: Api) -> None:
    jobs = client(api)
    status, body, _ = await api.call(
        "POST",
        "/binaries/printer",
        data=PRINTER,
        headers={"Content-Type": "text/x-python", "Authorization": jobs._authorization or ""},
    )
    assert status == 201, body
    await asyncio.to_thread(jobs.create_context, "log-ctx")
    submitted = await asyncio.to_thread(jobs.submit_job, "printer:main", cp=["printer"], context="log-ctx")
    job_id = submitted["jobId"]

    followed = await asyncio.to_thread(lambda: list(jobs.follow_logs(job_id)))
    assert followed == ["line 0", "line 1", "line 2"]
    events = await asyncio.to_thread(lambda: list(jobs.events(job_id)))
    assert events == [("state", events[0][1])] and events[0][1]["status"] == "FINISHED"
    assert await asyncio.to_thread(jobs.logs, job_id, start=1, size=1) == {
        "from": 1,
        "total": 3,
        "log": ["line 1"],
    }

    async with AsyncJobServerClient(url(api), user="ops", password="secret") as aio:
        assert (await aio.logs(job_id))["log"] == followed
        assert [line async for line in aio.follow_logs(job_id, start=2)] == ["line 2"]
        assert [event async for event, _ in aio.events(job_id)] == ["state"]

    code, out, _ = await cli(api, "jobs", "logs", job_id)
    assert (code, out.splitlines()) == (0, followed)
    submit = ("jobs", "submit", "printer:main", "--cp", "printer", "--context", "log-ctx", "--wait")
    code, out, _ = await cli(api, *submit)
    assert (code, out.strip()) == (0, '"printed"')
    code, out, _ = await cli(api, "jobs", "logs", job_id, "--follow", "--from", "1")
    assert (code, out.splitlines()) == (0, ["line 1", "line 2"])
    code, _, err = await cli(api, "jobs", "logs", "no-such-job")
    assert code == 3 and "404" in err
    await asyncio.to_thread(jobs.delete_context, "log-ctx")
