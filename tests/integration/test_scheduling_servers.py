"""Schedules and workflows across servers, restarts and time, with the light driver and a clock the
tests move on: two servers on one PostgreSQL database start each due time exactly once, a server
that starts again after a gap catches up as each schedule says, and ended workflows and runs
that are over expire.

The servers run in the test's process (the app factory), so that one manual clock moves them both.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from jobserver.common.scheduling import RunState, ScheduleRun
from jobserver.storage import create_store
from tests.clock import ManualClock
from tests.support import FAKE_SPARK_HOMES, Api, running_server, wait_until

ECHO = "example_jobs.echo.EchoJob"
SLEEP = "example_jobs.sleep_job.PythonSleepJob"
START = datetime.datetime(2024, 1, 1, 0, 0, 30, tzinfo=datetime.UTC)
JSON = {"Content-Type": "application/json"}
FINAL = ("FINISHED", "ERROR", "KILLED")


def echo_schedule(name: str, context: str = "sched", **fields: Any) -> str:
    job = {"appName": "examples", "classPath": ECHO, "config": {"input": name}}
    if context:
        job["context"] = context
    return json.dumps({"name": name, "cron": "* * * * *", "job": job, **fields})


async def runs(api: Api, name: str) -> list[dict[str, Any]]:
    status, body, _ = await api.call("GET", f"/schedules/{name}/runs")
    assert status == 200, body
    return list(body)


async def runs_settled(api: Api, name: str, count: int) -> list[dict[str, Any]]:
    """The schedule's runs once there are ``count``, each over (its job ended, or none started)."""

    async def settled() -> list[dict[str, Any]] | None:
        listed = await runs(api, name)
        over = [run for run in listed if run.get("status") in FINAL or run["state"] in ("FAILED", "SKIPPED")]
        done = len(listed) >= count and len(over) == len(listed)
        return listed if done else None

    return await wait_until(settled, timeout_s=20, what=f"{count} runs of {name} ended")


async def test_two_servers_on_one_database_start_each_due_time_exactly_once(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    clock = ManualClock(START)
    shared = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.store.url": fresh_postgres_url,
        "spark.jobserver.key-file": str(tmp_path / "group.key"),
        "spark.jobserver.max-jobs-per-context": 4,
    }
    async with (
        running_server(tmp_path / "a", {**shared, "spark.jobserver.server-id": "server-a"}, clock=clock) as a,
        running_server(tmp_path / "b", {**shared, "spark.jobserver.server-id": "server-b"}, clock=clock) as b,
    ):
        await a.upload("examples")
        assert (await a.call("POST", "/contexts/sched"))[0] == 200
        # Either server may start an ad-hoc job; a job in a context only the server that runs it.
        anywhere = echo_schedule("anywhere", "")
        assert (await b.call("POST", "/schedules", data=anywhere, headers=JSON))[0] == 201
        assert (await b.call("POST", "/schedules", data=echo_schedule("in-context"), headers=JSON))[0] == 201
        idle = echo_schedule("idle", paused=True)
        assert (await a.call("POST", "/schedules", data=idle, headers=JSON))[0] == 201

        due_times = 4
        for minute in range(1, due_times + 1):
            clock.advance(minutes=1)  # both schedulers wake, and both try the due time
            for name in ("anywhere", "in-context"):
                listed = await runs_settled(a, name, minute)
                assert len(listed) == minute, listed
        started: list[str] = []
        for name in ("anywhere", "in-context"):
            listed = await runs(b, name)
            assert [run["dueAt"][:16] for run in listed] == [
                f"2024-01-01T00:0{minute}" for minute in range(due_times, 0, -1)
            ]
            assert {(run["state"], run["status"]) for run in listed} == {("STARTED", "FINISHED")}, listed
            for run in listed:
                assert (await b.call("GET", f"/jobs/{run['jobId']}"))[1]["result"] == name
            started += [run["jobId"] for run in listed]
        assert {run["claimedBy"] for run in await runs(a, "in-context")} == {"server-a"}
        jobs = [job for job in (await a.call("GET", "/jobs"))[1] if job["classPath"] == ECHO]
        assert sorted(job["jobId"] for job in jobs) == sorted(started), "one job per due time"
        assert await runs(a, "idle") == [], "a paused schedule starts nothing on either server"


async def test_after_a_restart_a_schedule_catches_up_its_last_missed_due_time_or_none(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    light = {"spark.home": str(FAKE_SPARK_HOMES / "light")}
    async with running_server(tmp_path, light, clock=clock) as api:
        await api.upload("examples")
        for name, catch_up in (("skips", "skip"), ("catches-up", "last")):
            body = echo_schedule(name, "", cron="0 * * * *", catchUp=catch_up)  # ad hoc
            assert (await api.call("POST", "/schedules", data=body, headers=JSON))[0] == 201

    clock.advance(hours=3)  # no server ran at 01:00, 02:00 and 03:00
    async with running_server(tmp_path, light, clock=clock) as api:
        [run] = await runs_settled(api, "catches-up", 1)
        assert run["dueAt"].startswith("2024-01-01T03:00:00") and run["status"] == "FINISHED", run
        assert await runs(api, "skips") == []
        for name in ("skips", "catches-up"):
            schedule = (await api.call("GET", f"/schedules/{name}"))[1]
            assert schedule["nextDueAt"].startswith("2024-01-01T04:00:00"), schedule


async def test_ended_workflows_and_runs_that_are_over_expire_while_their_jobs_stay(tmp_path: Path) -> None:
    clock = ManualClock(START)
    retention = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.dao-cleanup-interval": "200ms",
        "spark.jobserver.workflows.cleanup-after": "100ms",
        "spark.jobserver.scheduler.runs-cleanup-after": "1s",
    }
    async with running_server(tmp_path, retention, clock=clock) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/sched"))[0] == 200
        slow = {
            "appName": "examples",
            "classPath": SLEEP,
            "context": "sched",
            "config": {"sleep": {"seconds": 2}},
        }
        body = json.dumps({"name": "slow", "cron": "* * * * *", "job": slow})
        assert (await api.call("POST", "/schedules", data=body, headers=JSON))[0] == 201
        steps = [{"name": "only", "job": {**slow, "classPath": ECHO, "config": {"input": 1}}}]
        status, workflow, _ = await api.call(
            "POST", "/workflows", data=json.dumps({"steps": steps}), headers=JSON
        )
        assert status == 202, workflow

        clock.advance(minutes=1)

        async def started() -> list[dict[str, Any]] | None:
            listed = await runs(api, "slow")
            return listed if listed and "jobId" in listed[0] else None

        [run] = await wait_until(started, what="the run's job")
        await api.wait_job_state(run["jobId"], "RUNNING")

        async def workflow_gone() -> bool:
            return (await api.call("GET", f"/workflows/{workflow['workflowId']}"))[0] == 404

        async def runs_gone() -> bool:
            return await runs(api, "slow") == []

        await wait_until(workflow_gone, timeout_s=10, what="the ended workflow deleted")
        assert (await api.job_state(run["jobId"])) == "RUNNING"
        assert [entry["jobId"] for entry in await runs(api, "slow")] == [run["jobId"]], "its run is kept"
        await api.wait_job_state(run["jobId"], "FINISHED")
        await wait_until(runs_gone, timeout_s=10, what="the run deleted once its job ended")
        assert (await api.job_state(run["jobId"])) == "FINISHED", "jobs follow dao-cleanup-after"
        assert (await api.call("GET", "/schedules/slow"))[0] == 200


@pytest.mark.parametrize(
    ("claimant", "why"),
    [
        ("this server", "stopped"),  # it stopped between the claim and the submission
        ("server-gone", "went silent"),  # a peer that died then and never comes back
    ],
)
async def test_a_due_time_claimed_and_never_started_does_not_block_the_next(
    tmp_path: Path, claimant: str, why: str
) -> None:
    clock = ManualClock(START)
    light = {"spark.home": str(FAKE_SPARK_HOMES / "light")}
    async with running_server(tmp_path, light, clock=clock) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/schedules", data=echo_schedule("every", ""), headers=JSON))[0] == 201
        settings = api.settings
    # What a server leaves when it stops between claiming a due time and submitting its job.
    store = create_store(settings.store_url, blob_dir=tmp_path / "probe-blobs")
    await store.open()
    try:
        due = START + datetime.timedelta(seconds=30)
        server_id = settings.server_id if claimant == "this server" else claimant
        assert await store.claim_run(ScheduleRun("every", due, RunState.CLAIMED, server_id))
    finally:
        await store.close()

    clock.advance(seconds=31)  # 00:01:01: the due time is taken; the next one is at 00:02
    async with running_server(tmp_path, light, clock=clock) as api:
        clock.advance(minutes=1)
        listed = await runs_settled(api, "every", 2)
        assert [(run["dueAt"][:16], run["state"]) for run in listed] == [
            ("2024-01-01T00:02", "STARTED"),
            ("2024-01-01T00:01", "FAILED"),
        ], listed
        assert listed[0]["status"] == "FINISHED"
        assert why in listed[1]["error"]
