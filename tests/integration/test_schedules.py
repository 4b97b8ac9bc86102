"""Schedules on a real server with the light driver and a clock the tests move on: a run per due
time, once; pause and resume; catch-up after a gap; overlap; a schedule that runs a workflow."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.clock import ManualClock
from tests.support import FAKE_SPARK_HOMES, Api, running_server, wait_until

ECHO = "example_jobs.echo.EchoJob"
SLEEP = "example_jobs.sleep_job.PythonSleepJob"
START = datetime.datetime(2024, 1, 1, 0, 0, 30, tzinfo=datetime.UTC)


@pytest.fixture
async def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def api(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Api]:
    overrides = {"spark.home": str(FAKE_SPARK_HOMES / "light"), "spark.jobserver.max-jobs-per-context": 4}
    async with running_server(tmp_path, overrides, clock=clock) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/sched"))[0] == 200
        yield api


def job(class_path: str = ECHO, config: Any = None) -> dict[str, Any]:
    return {"appName": "examples", "classPath": class_path, "context": "sched", "config": config or {}}


async def create(api: Api, name: str, cron: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "cron": cron, "job": job(config={"input": {"from": name}}), **fields}
    status, schedule, _ = await api.call("POST", "/schedules", data=_json(body), headers=JSON)
    assert status == 201, schedule
    return schedule


JSON = {"Content-Type": "application/json"}


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


async def runs_until(api: Api, name: str, count: int, *states: str) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        _, runs, _ = await api.call("GET", f"/schedules/{name}/runs")
        done = [run for run in runs if not states or run.get("status", run["state"]) in states]
        return runs if len(done) >= count else None

    return await wait_until(enough, timeout_s=30, what=f"{count} runs of {name} in {states}")


async def test_a_schedule_runs_its_job_once_per_due_time_and_not_while_paused(
    api: Api, clock: ManualClock
) -> None:
    schedule = await create(api, "minutely", "* * * * *", timeZone="Europe/Berlin")
    assert schedule["nextDueAt"].startswith("2024-01-01T00:01:00")
    assert (await api.call("GET", "/schedules/minutely"))[1]["cron"] == "* * * * *"
    assert [s["name"] for s in (await api.call("GET", "/schedules"))[1]] == ["minutely"]

    clock.advance(seconds=30)
    [run] = await runs_until(api, "minutely", 1, "FINISHED")
    assert run["dueAt"].startswith("2024-01-01T00:01:00") and run["state"] == "STARTED"
    finished = await api.wait_job_state(run["jobId"], "FINISHED")
    assert finished["result"] == {"from": "minutely"}

    assert (await api.call("POST", "/schedules/minutely/pause"))[1]["paused"] is True
    clock.advance(minutes=5)  # five due times pass while paused: none runs
    resumed = (await api.call("POST", "/schedules/minutely/resume"))[1]
    assert resumed["paused"] is False and resumed["nextDueAt"].startswith("2024-01-01T00:07:00")
    clock.advance(minutes=1)
    runs = await runs_until(api, "minutely", 2, "FINISHED")
    assert [r["dueAt"][:19] for r in runs] == ["2024-01-01T00:07:00", "2024-01-01T00:01:00"]

    assert (await api.call("DELETE", "/schedules/minutely"))[:2] == (
        200,
        {"status": "SUCCESS", "result": "Schedule deleted"},
    )
    assert (await api.call("GET", "/schedules/minutely"))[0] == 404
    assert (await api.call("GET", "/schedules/minutely/runs"))[0] == 404


async def test_bad_schedules_are_refused_with_the_error_envelope(api: Api) -> None:
    cases = [
        ({"name": "x", "cron": "61 * * * *", "job": job()}, "invalid cron expression"),
        ({"name": "x", "cron": "0 2 * * *", "timeZone": "Mars/Olympus", "job": job()}, "unknown time zone"),
        ({"name": "x", "cron": "0 2 * * *", "job": {"context": "sched"}}, "appName or cp"),
        ({"name": "x", "cron": "0 2 * * *", "job": job(), "overlap": "sometimes"}, "overlap must be"),
        ({"name": "x", "cron": "0 2 * * *"}, "either a job or a workflow"),
    ]
    for body, message in cases:
        status, answer, _ = await api.call("POST", "/schedules", data=_json(body), headers=JSON)
        assert status == 400 and answer["status"] == "ERROR" and message in answer["result"], answer
    await create(api, "taken", "0 2 * * *")
    status, answer, _ = await api.call(
        "POST", "/schedules", data=_json({"name": "taken", "cron": "0 3 * * *", "job": job()}), headers=JSON
    )
    assert status == 409, answer


async def test_json_bodies_too_deep_or_with_nuls_are_refused_on_every_json_route(api: Api) -> None:
    """Schedules and workflows read their bodies as a job's JSON config is read: a body nested
    too deep (which broke the JSON reader: 500) or holding a NUL (which PostgreSQL refuses) is a
    400 in the error envelope, and nothing is stored."""
    deep = "[" * 5000 + "]" * 5000
    with_nul = _json({"name": "nul\u0000", "cron": "0 2 * * *", "job": job()})
    with_nan = '{"name": "nan", "cron": "0 2 * * *", "job": {"appName": "a", "input": NaN}}'
    cases = [
        (deep, "nested more than 64 deep"),
        (with_nul, "a NUL character is not allowed"),
        (with_nan, "NaN is not a number JSON can carry"),
        ("{", "the body is not JSON"),
    ]
    for method, path in (("POST", "/schedules"), ("PUT", "/schedules/nul"), ("POST", "/workflows")):
        for body, message in cases:
            status, answer, _ = await api.call(method, path, data=body, headers=JSON)
            assert status == 400 and answer["status"] == "ERROR", (method, path, answer)
            assert message in answer["result"], (method, path, answer)
    assert (await api.call("GET", "/schedules"))[1] == []
    assert (await api.call("GET", "/workflows"))[1] == []


async def test_after_a_gap_catch_up_runs_the_last_missed_time_once_or_none(
    api: Api, clock: ManualClock
) -> None:
    await create(api, "a-skips", "0 * * * *", catchUp="skip")
    await create(api, "b-catches-up", "0 * * * *", catchUp="last")
    clock.advance(hours=5)  # the server slept through five due times
    [run] = await runs_until(api, "b-catches-up", 1, "FINISHED")
    assert run["dueAt"].startswith("2024-01-01T05:00:00")
    assert (await api.call("GET", "/schedules/a-skips/runs"))[1] == []
    schedule = (await api.call("GET", "/schedules/a-skips"))[1]
    assert schedule["nextDueAt"].startswith("2024-01-01T06:00:00")


async def test_overlap_skips_or_queues_a_due_time_while_the_previous_run_goes(
    api: Api, clock: ManualClock
) -> None:
    slow = job(SLEEP, {"sleep": {"seconds": 1.5}})
    for name, overlap in (("queues", "queue"), ("skips", "skip")):
        body = {"name": name, "cron": "* * * * *", "job": slow, "overlap": overlap}
        assert (await api.call("POST", "/schedules", data=_json(body), headers=JSON))[0] == 201
    clock.advance(seconds=30)
    for name in ("queues", "skips"):
        await runs_until(api, name, 1, "RUNNING")
    clock.advance(minutes=1)
    skipped = await runs_until(api, "skips", 1, "SKIPPED")
    assert [run["state"] for run in skipped] == ["SKIPPED", "STARTED"]
    # The queued due time waits, without a job, while the first run's job still runs.
    waiting, first_run = await runs_until(api, "queues", 2)
    assert waiting["state"] == "QUEUED" and "jobId" not in waiting, waiting
    assert (await api.job_state(first_run["jobId"])) == "RUNNING"
    first = await api.wait_job_state(first_run["jobId"], "FINISHED")
    second_run, _ = await runs_until(api, "queues", 2, "FINISHED")
    assert second_run["state"] == "STARTED" and second_run["dueAt"].startswith("2024-01-01T00:02:00")
    second = await api.wait_job_state(second_run["jobId"], "FINISHED")
    assert _started_at(second) >= _started_at(first) + _duration_s(first), "started after the first ended"
    # Once: one job per due time, and nothing more starts (the next due time is a minute away).
    await wait_until(lambda: _no_job_running(api), what="every job ended")
    sleeps = [job for job in (await api.call("GET", "/jobs"))[1] if job["classPath"] == SLEEP]
    assert sorted(job["jobId"] for job in sleeps) == sorted(
        [first["jobId"], second["jobId"], skipped[1]["jobId"]]
    )
    assert [run["state"] for run in (await api.call("GET", "/schedules/queues/runs"))[1]] == ["STARTED"] * 2


def _started_at(job: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(job["startTime"]).timestamp()


def _duration_s(job: dict[str, Any]) -> float:
    return float(job["duration"].split()[0])


async def _no_job_running(api: Api) -> bool:
    jobs = (await api.call("GET", "/jobs"))[1]
    return all(job["status"] in ("FINISHED", "ERROR", "KILLED") for job in jobs)


async def test_a_schedule_may_run_a_workflow(api: Api, clock: ManualClock) -> None:
    workflow = {
        "name": "tiny",
        "steps": [
            {"name": "one", "job": job(config={"input": 1})},
            {"name": "two", "after": ["one"], "job": job(config={"input": "${steps.one.result}"})},
        ],
    }
    body = {"name": "flow", "cron": "* * * * *", "workflow": workflow}
    assert (await api.call("POST", "/schedules", data=_json(body), headers=JSON))[0] == 201
    clock.advance(seconds=30)
    [run] = await runs_until(api, "flow", 1, "FINISHED")
    _, ran, _ = await api.call("GET", f"/workflows/{run['workflowId']}")
    assert ran["state"] == "FINISHED" and ran["schedule"] == "flow"
    assert [step["state"] for step in ran["steps"]] == ["FINISHED", "FINISHED"]
