"""Schedules and workflows through the Python client (sync and asyncio) and ``jobserver-cli``,
against a real server with stand-in drivers and a clock the test moves: what a user runs and
what they see (returns, tables, exit statuses, error messages)."""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import os
import re
import shlex
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from jobserver_client import JobServerClient, JobServerError, calls
from jobserver_client.aio import AsyncJobServerClient
from tests.clock import ManualClock
from tests.integration.test_client import cli, url
from tests.support import FAKE_SPARK_HOMES, REPO, Api, running_server, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

ECHO = "example_jobs.echo.EchoJob"
SLEEP = "example_jobs.sleep_job.PythonSleepJob"
FAILING = "example_jobs.failing_job.FailingRunJob"
START = datetime.datetime(2024, 1, 1, 0, 0, 30, tzinfo=datetime.UTC)
SLOW_WORKFLOW_HOCON = """
name = slow
steps = [
  {name = nap, job {appName = examples, classPath = example_jobs.sleep_job.PythonSleepJob, context = etl,
                    config.sleep.seconds = 30}}
  {name = never, after = [nap], job {appName = examples, classPath = example_jobs.echo.EchoJob,
                                     context = etl, config.input = "${steps.nap.result}"}}
]
"""


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(START)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, clock: ManualClock) -> AsyncIterator[Api]:
    overrides = {"spark.home": str(FAKE_SPARK_HOMES / "light"), "spark.jobserver.max-jobs-per-context": 8}
    async with running_server(tmp_path_factory.mktemp("scheduling"), overrides, clock=clock) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/etl"))[0] == 200
        yield api


def client(api: Api) -> JobServerClient:
    return JobServerClient(url(api))


def echo_step(name: str, config: Any = None, **more: Any) -> dict[str, Any]:
    job = calls.job_spec(ECHO, app_name="examples", context="etl", config=config or {})
    return {"name": name, "job": job, **more}


async def runs_until(jobs: JobServerClient, name: str, count: int) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        runs = await asyncio.to_thread(jobs.schedule_runs, name)
        return runs if len([run for run in runs if run.get("status") == "FINISHED"]) >= count else None

    return await wait_until(enough, timeout_s=30, what=f"{count} finished runs of {name}")


async def test_sync_client_creates_replaces_pauses_and_deletes_a_schedule(
    api: Api, clock: ManualClock
) -> None:
    jobs = client(api)
    echo = calls.job_spec(ECHO, app_name="examples", context="etl", config={"input": {"from": "nightly"}})
    created = await asyncio.to_thread(
        jobs.create_schedule, "py-nightly", "0 2 * * *", job=echo, time_zone="Europe/Paris", overlap="queue"
    )
    assert (created["name"], created["timeZone"], created["overlap"], created["paused"]) == (
        "py-nightly",
        "Europe/Paris",
        "queue",
        False,
    )
    assert created["nextDueAt"][10:19] == "T01:00:00"  # 02:00 in Paris, in winter (the test clock: January)
    assert created["job"]["classPath"] == ECHO
    assert "py-nightly" in [s["name"] for s in await asyncio.to_thread(jobs.schedules)]
    assert (await asyncio.to_thread(jobs.schedule, "py-nightly"))["cron"] == "0 2 * * *"

    replaced = await asyncio.to_thread(jobs.replace_schedule, "py-nightly", "* * * * *", job=echo)
    assert (replaced["cron"], replaced["timeZone"], replaced["overlap"]) == ("* * * * *", "UTC", "skip")
    assert (await asyncio.to_thread(jobs.pause_schedule, "py-nightly"))["paused"] is True
    assert (await asyncio.to_thread(jobs.resume_schedule, "py-nightly"))["paused"] is False
    clock.advance(minutes=1)
    [run] = await runs_until(jobs, "py-nightly", 1)
    assert run["state"] == "STARTED" and (await asyncio.to_thread(jobs.job, run["jobId"]))["result"] == {
        "from": "nightly"
    }

    with pytest.raises(JobServerError, match="answered 409") as taken:
        await asyncio.to_thread(jobs.create_schedule, "py-nightly", "0 3 * * *", job=echo)
    assert taken.value.status == 409
    with pytest.raises(JobServerError, match="invalid cron expression") as bad:
        await asyncio.to_thread(jobs.create_schedule, "py-bad", "61 * * * *", job=echo)
    assert bad.value.status == 400 and bad.value.body["status"] == "ERROR"
    with pytest.raises(ValueError, match="either a job or a workflow"):
        await asyncio.to_thread(jobs.create_schedule, "py-bad", "0 3 * * *")
    await asyncio.to_thread(jobs.delete_schedule, "py-nightly")
    with pytest.raises(JobServerError) as gone:
        await asyncio.to_thread(jobs.schedule_runs, "py-nightly")
    assert gone.value.status == 404


async def test_asyncio_client_starts_waits_lists_and_kills_workflows(api: Api, tmp_path: Path) -> None:
    async with AsyncJobServerClient(url(api)) as flows:
        started = await flows.start_workflow(
            {
                "name": "py-flow",
                "steps": [
                    echo_step("ingest", {"input": {"rows": 3}}),
                    echo_step("report", {"input": "${steps.ingest.result}"}, after=["ingest"]),
                ],
            }
        )
        assert started["state"] == "RUNNING" and [s["name"] for s in started["steps"]] == ["ingest", "report"]
        ended = await flows.wait_workflow(started["workflowId"], timeout_s=30, interval_s=0.1)
        assert ended["state"] == "FINISHED" and (await flows.job(ended["steps"][1]["jobId"]))["result"] == {
            "rows": 3
        }
        listed = await flows.workflows(status="FINISHED", limit=100)
        assert started["workflowId"] in [w["workflowId"] for w in listed]

        hocon = tmp_path / "slow.conf"  # HOCON: a step result's reference in quotes
        hocon.write_text(SLOW_WORKFLOW_HOCON)
        slow = await flows.start_workflow(hocon)
        with pytest.raises(TimeoutError, match="still RUNNING"):
            await flows.wait_workflow(slow["workflowId"], timeout_s=0.2, interval_s=0.1)

        async def napping() -> bool:
            step = (await flows.workflow(slow["workflowId"]))["steps"][0]
            return "jobId" in step and (await flows.job(step["jobId"]))["status"] == "RUNNING"

        await wait_until(napping, what="the nap step's job to run")
        killed = await flows.kill_workflow(slow["workflowId"])
        assert killed["state"] == "KILLED" and [s["state"] for s in killed["steps"]] == ["KILLED", "KILLED"]
        with pytest.raises(JobServerError) as again:
            await flows.kill_workflow(slow["workflowId"])
        assert again.value.status == 404
        with pytest.raises(JobServerError, match="cycle") as cyclic:
            await flows.start_workflow({"steps": [echo_step("a", after=["b"]), echo_step("b", after=["a"])]})
        assert cyclic.value.status == 400

        scheduled = await flows.create_schedule("aio-slow", "0 4 * * 1", workflow=hocon, paused=True)
        assert scheduled["paused"] is True and scheduled["workflow"]["steps"][1]["job"]["config"] == {
            "input": "${steps.nap.result}"
        }
        assert [s["name"] for s in await flows.schedules()].count("aio-slow") == 1
        assert (await flows.resume_schedule("aio-slow"))["nextDueAt"][10:19] == "T04:00:00"
        assert (await flows.pause_schedule("aio-slow"))["paused"] is True
        replaced = await flows.replace_schedule(
            "aio-slow", "0 5 * * *", job=calls.job_spec(ECHO, app_name="x")
        )
        assert (
            (await flows.schedule("aio-slow"))["job"]
            == replaced["job"]
            == {"appName": "x", "classPath": ECHO, "config": {}}
        )
        assert await flows.schedule_runs("aio-slow", limit=5) == []
        await flows.delete_schedule("aio-slow")
        with pytest.raises(JobServerError) as gone:
            await flows.schedule("aio-slow")
        assert gone.value.status == 404


async def test_a_workflow_with_an_unknown_field_is_refused_like_a_schedule_with_one(api: Api) -> None:
    jobs = client(api)
    with pytest.raises(JobServerError) as schedule_refused:
        typo = {"cron": "0 2 * * *", "job": calls.job_spec(ECHO), "tmieZone": "UTC"}
        await asyncio.to_thread(jobs.send, calls.create_schedule("typo", typo))
    assert schedule_refused.value.status == 400 and "unknown schedule field tmieZone" in str(
        schedule_refused.value
    )
    with pytest.raises(JobServerError) as workflow_refused:
        await asyncio.to_thread(jobs.start_workflow, {"nmae": "typo", "steps": [echo_step("one")]})
    refusal = workflow_refused.value
    assert refusal.status == 400 and "unknown workflow field nmae" in str(refusal)


async def test_cli_manages_a_schedule_and_lists_its_runs(
    api: Api, clock: ManualClock, tmp_path: Path
) -> None:
    config = tmp_path / "ingest.conf"
    config.write_text('input { day = "today" }')
    create = ("schedules", "create", "cli-nightly", "--cron", "0 2 * * *", "--time-zone", "Europe/Paris")
    job = ("--app-name", "examples", "--class-path", ECHO, "--context", "etl", "--config", str(config))
    code, out, err = await cli(api, *create, *job)
    assert (code, err) == (0, "") and out.startswith("schedule cli-nightly created, next due at 20")
    code, out, _ = await cli(api, "schedules", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NAME", "CRON", "TIME", "ZONE", "NEXT", "DUE", "PAUSED", "RUNS"]
    row = next(line for line in lines[2:] if line.startswith("cli-nightly "))
    assert "0 2 * * *" in row and "Europe/Paris" in row and row.split()[-2:] == ["no", ECHO]
    code, out, _ = await cli(api, "schedules", "show", "cli-nightly")
    assert code == 0 and json.loads(out)["job"]["config"] == 'input { day = "today" }'

    minutely = ("schedules", "update", "cli-nightly", "--cron", "* * * * *", *job)
    code, out, _ = await cli(api, *minutely)
    assert code == 0 and out.startswith("schedule cli-nightly replaced, next due at")
    assert await cli(api, "schedules", "pause", "cli-nightly") == (0, "schedule cli-nightly paused\n", "")
    code, out, _ = await cli(api, "schedules", "resume", "cli-nightly")
    assert code == 0 and out.startswith("schedule cli-nightly resumed, next due at")
    clock.advance(minutes=1)
    [run] = await runs_until(client(api), "cli-nightly", 1)
    code, out, _ = await cli(api, "schedules", "runs", "cli-nightly")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["DUE", "STATE", "STATUS", "JOB", "OR", "WORKFLOW", "ERROR"]
    assert lines[2].split() == [run["dueAt"], "STARTED", "FINISHED", run["jobId"]]
    code, out, _ = await cli(api, "--json", "schedules", "runs", "cli-nightly", "--limit", "1")
    assert code == 0 and json.loads(out)[0]["jobId"] == run["jobId"]

    code, out, err = await cli(api, *create, *job)
    assert (code, out) == (3, "") and "POST /schedules answered 409" in err
    code, out, err = await cli(api, "schedules", "create", "cli-bad", "--cron", "61 * * * *", *job)
    assert code == 3 and "answered 400: invalid cron expression" in err
    code, _, err = await cli(
        api, "schedules", "create", "cli-bad", "--cron", "0 2 * * *", "--workflow", "x", *job
    )
    assert code == 2 and "either --workflow or a job" in err
    code, _, err = await cli(
        api, "schedules", "create", "cli-bad", "--cron", "0 2 * * *", "--workflow", "nope"
    )
    assert code == 2 and "cannot read nope" in err
    code, _, err = await cli(api, "contexts", "create", "cli-bad", "--set", "no-equals-sign")
    assert (code, err) == (2, "jobserver-cli: --set takes key=value, not 'no-equals-sign'\n")  # as documented
    assert await cli(api, "schedules", "delete", "cli-nightly") == (0, "schedule cli-nightly deleted\n", "")
    code, _, err = await cli(api, "schedules", "show", "cli-nightly")
    assert code == 3 and "404" in err


async def test_cli_starts_waits_shows_and_kills_workflows(api: Api, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({"name": "cli-flow", "steps": [echo_step("one"), echo_step("two", after=["one"])]})
    )
    code, out, err = await cli(api, "workflows", "start", str(good), "--wait", "--timeout", "30")
    lines = out.splitlines()
    assert (code, err) == (0, "") and lines[0].split()[1:] == ["cli-flow", "FINISHED"]
    assert lines[1].split() == ["STEP", "STATE", "AFTER", "JOB"]
    assert [line.split()[:3] for line in lines[3:]] == [
        ["one", "FINISHED", lines[3].split()[2]],
        ["two", "FINISHED", "one"],
    ]
    workflow_id = lines[0].split()[0]
    code, out, _ = await cli(api, "--json", "workflows", "show", workflow_id)
    assert code == 0 and json.loads(out)["state"] == "FINISHED"
    code, out, _ = await cli(api, "workflows", "list", "--status", "FINISHED")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["WORKFLOW", "NAME", "STATE"]
    assert any(line.split()[:3] == [workflow_id, "cli-flow", "FINISHED"] for line in out.splitlines()[2:])

    failing = tmp_path / "failing.json"
    failing.write_text(
        json.dumps(
            {
                "name": "cli-fails",
                "steps": [
                    {"name": "breaks", "job": calls.job_spec(FAILING, app_name="examples", context="etl")}
                ],
            }
        )
    )
    code, out, err = await cli(api, "workflows", "start", str(failing), "--wait")
    assert code == 1 and "cli-fails ERROR" in out and "ended ERROR" in err and "breaks" in err

    slow = tmp_path / "slow.json"
    nap = calls.job_spec(SLEEP, app_name="examples", context="etl", config="sleep.seconds = 30")
    slow.write_text(json.dumps({"name": "cli-slow", "steps": [{"name": "nap", "job": nap}]}))
    code, out, _ = await cli(api, "workflows", "start", str(slow))
    slow_id, state = out.split()
    assert (code, state) == (0, "RUNNING")

    async def napping() -> bool:
        step = (await asyncio.to_thread(client(api).workflow, slow_id))["steps"][0]
        return "jobId" in step and (await api.job_state(step["jobId"])) == "RUNNING"

    await wait_until(napping, what="the nap step's job to run")
    code, out, err = await cli(api, "workflows", "wait", slow_id, "--timeout", "0.3")
    assert code == 3 and "still RUNNING" in err
    code, out, _ = await cli(api, "workflows", "kill", slow_id)
    assert code == 0 and out.splitlines()[0].split()[1:] == ["cli-slow", "KILLED"]
    code, _, err = await cli(api, "workflows", "show", "no-such-workflow")
    assert code == 3 and "404" in err
    unquoted = tmp_path / "unquoted.conf"
    unquoted.write_text("steps = [{name = b, after = [a], job.config.input = ${steps.a.result}}]")
    code, out, err = await cli(api, "workflows", "start", str(unquoted))
    assert (code, out) == (2, "") and 'quote step results: "${steps.<name>.result}"' in err


ETL_JOBS = b'''
"""Stand-ins for docs/workflows.md's etl.jobs: what each step got, so the test sees it."""


def ingest(spark, config):
    return {"path": config.get("input").get("path"), "rows": 3}


def clean(spark, config):
    return {"cleaned": config.get("input").get("ingested").get("rows")}


def enrich(spark, config):
    return {"enriched": config.get("input").get("ingested").get("rows")}
'''


def documented(page: str) -> tuple[str, list[list[str]], list[str]]:
    """From a docs page: the daily.json it writes, its ``jobserver-cli`` commands (in order, with
    their continuation lines joined) and its Python blocks."""
    daily = page.split("cat > daily.json <<'JSON'\n", 1)[1].split("\nJSON\n", 1)[0]
    commands, python = [], []
    for block in re.findall(r"```(sh|python)\n(.*?)```", page, flags=re.S):
        if block[0] == "python":
            python.append(block[1])
            continue
        for line in block[1].replace("\\\n", " ").splitlines():
            if line.startswith("jobserver-cli "):
                commands.append(shlex.split(line, comments=True)[1:])
    return daily, commands, python


async def test_the_daily_etl_of_docs_workflows_runs_as_documented(
    api: Api, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daily, commands, python = documented((REPO / "docs" / "workflows.md").read_text())
    (tmp_path / "daily.json").write_text(daily)
    archive = tmp_path / "etl.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("etl/__init__.py", "")
        zipped.writestr("etl/jobs.py", ETL_JOBS)
    await api.upload("etl", archive, "application/python-archive")
    workflow_id = ""
    for command in commands:
        if command[:2] == ["schedules", "runs"]:  # let a night pass first: 02:00 in Berlin
            clock.advance(days=1)
            runs = functools.partial(asyncio.to_thread, client(api).schedule_runs, command[2])
            await wait_until(runs, what=f"a run of {command[2]}")
        arguments = [workflow_id if argument == "<workflowId>" else argument for argument in command]
        code, out, err = await cli_in(api, tmp_path, *arguments)
        # The stand-in driver has no Spark SQL: the report step (and so the workflow) ends ERROR,
        # the steps before it run as documented; a workflow that ended cannot be killed.
        expected = (1, "ended ERROR") if "wait" in command or "--wait" in command else (0, "")
        if command[:2] == ["workflows", "kill"]:
            expected = (3, "404")
        assert code == expected[0] and expected[1] in err, (command, code, out, err)
        if command[:2] == ["workflows", "start"]:
            workflow_id = out.split()[0]
        if "--wait" in command:
            lines = out.splitlines()
            assert lines[1:3] == [
                "STEP    STATE     AFTER         JOB",
                "------  --------  ------------  " + "-" * 36,
            ]
            assert [line.split()[:2] for line in lines[3:]] == [
                ["ingest", "FINISHED"],
                ["clean", "FINISHED"],
                ["enrich", "FINISHED"],
                ["report", "ERROR"],
            ]
    ran = await asyncio.to_thread(client(api).workflow, workflow_id)
    jobs = {step["name"]: step["jobId"] for step in ran["steps"]}
    results = [(await asyncio.to_thread(client(api).job, jobs[name]))["result"] for name in jobs]
    assert results[:3] == [{"path": "/landing/today", "rows": 3}, {"cleaned": 3}, {"enriched": 3}]
    assert "sql" in results[3]["message"]  # the stand-in's, not the workflow's, doing

    await asyncio.to_thread(client(api).delete_schedule, "nightly-etl")  # the Python blocks make it anew
    monkeypatch.chdir(tmp_path)
    for block in python:
        await asyncio.to_thread(exec, block.replace("http://localhost:8090", url(api)), {})
    assert [s["name"] for s in await asyncio.to_thread(client(api).schedules)] == ["nightly-etl"]


async def cli_in(api: Api, cwd: Path, *arguments: str) -> tuple[int, str, str]:
    """``jobserver-cli`` run in ``cwd`` against the test server."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobserver_client.cli",
        *arguments,
        cwd=cwd,
        env={**os.environ, "JOBSERVER_URL": url(api)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
