"""Workflows on a real server with the light driver: steps after their predecessors, results
passed on by reference, failures failing dependants, and a kill."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.support import FAKE_SPARK_HOMES, Api, running_server, wait_until

ECHO = "example_jobs.echo.EchoJob"
FAIL = "example_jobs.failing_job.FailingRunJob"
SLEEP = "example_jobs.sleep_job.PythonSleepJob"
JSON = {"Content-Type": "application/json"}

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    overrides = {"spark.home": str(FAKE_SPARK_HOMES / "light"), "spark.jobserver.max-jobs-per-context": 4}
    async with running_server(tmp_path_factory.mktemp("workflows"), overrides) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/flow"))[0] == 200
        yield api


def step(name: str, class_path: str = ECHO, config: Any = None, **more: Any) -> dict[str, Any]:
    job = {"appName": "examples", "classPath": class_path, "context": "flow", "config": config or {}}
    return {"name": name, "job": job, **more}


async def start(api: Api, *steps: dict[str, Any]) -> dict[str, Any]:
    status, body, _ = await api.call(
        "POST", "/workflows", data=json.dumps({"name": "t", "steps": steps}), headers=JSON
    )
    assert status == 202, body
    return body


async def ended(api: Api, workflow_id: str) -> dict[str, Any]:
    async def final() -> dict[str, Any] | None:
        _, body, _ = await api.call("GET", f"/workflows/{workflow_id}")
        return body if body["state"] != "RUNNING" else None

    return await wait_until(final, timeout_s=30, what=f"workflow {workflow_id} ended")


async def result(api: Api, job_id: str) -> Any:
    return (await api.call("GET", f"/jobs/{job_id}"))[1]["result"]


async def test_steps_run_after_their_predecessors_and_get_their_results(api: Api) -> None:
    started = await start(
        api,
        step("ingest", config={"input": {"rows": 3}}),
        step("left", config={"input": {"got": "${steps.ingest.result}"}}, after=["ingest"]),
        step("right", config="input = ${steps.ingest.result}", after=["ingest"]),  # HOCON text
        # HOCON text reading into the result: its own substitution resolves once the result is there
        step("pick", config="ingested = ${steps.ingest.result}\ninput = ${ingested.rows}", after=["ingest"]),
        step(
            "report",
            config={"input": "${steps.left.result} and ${steps.right.result}"},
            after=["left", "right"],
        ),
    )
    assert [s["state"] for s in started["steps"]][1:] == ["PENDING"] * 4
    done = await ended(api, started["workflowId"])
    assert done["state"] == "FINISHED", done
    jobs = {s["name"]: s["jobId"] for s in done["steps"]}
    assert await result(api, jobs["left"]) == {"got": {"rows": 3}}
    assert await result(api, jobs["right"]) == {"rows": 3}
    assert await result(api, jobs["pick"]) == 3
    assert await result(api, jobs["report"]) == '{"got":{"rows":3}} and {"rows":3}'
    listed = (await api.call("GET", "/workflows?status=finished"))[1]
    assert started["workflowId"] in [w["workflowId"] for w in listed]


async def test_a_failed_step_fails_its_dependants_unless_it_may_fail(api: Api) -> None:
    started = await start(
        api,
        step("breaks", FAIL),
        step("after-break", after=["breaks"]),
        step("may-break", FAIL, **{"continue-on-failure": True}),
        step("goes-on", config={"input": "${steps.may-break.result}"}, after=["may-break"]),
    )
    done = await ended(api, started["workflowId"])
    steps = {s["name"]: s for s in done["steps"]}
    assert done["state"] == "ERROR" and done["error"]["failedStep"] == "breaks"
    assert steps["breaks"]["state"] == "ERROR" and "jobId" in steps["breaks"]
    assert steps["after-break"]["state"] == "ERROR" and "jobId" not in steps["after-break"]
    assert steps["after-break"]["error"]["failedJobId"] == steps["breaks"]["jobId"]
    assert steps["goes-on"]["state"] == "FINISHED"
    assert await result(api, steps["goes-on"]["jobId"]) is None


async def test_a_killed_workflow_kills_its_running_steps_and_starts_no_more(api: Api) -> None:
    started = await start(api, step("long", SLEEP, {"sleep": {"seconds": 30}}), step("never", after=["long"]))

    async def running() -> str | None:
        body = (await api.call("GET", f"/workflows/{started['workflowId']}"))[1]
        return body["steps"][0].get("jobId")

    job_id = await wait_until(running, what="the first step's job")
    await api.wait_job_state(job_id, "RUNNING")
    status, killed, _ = await api.call("DELETE", f"/workflows/{started['workflowId']}")
    assert status == 200 and killed["state"] == "KILLED"
    assert [s["state"] for s in killed["steps"]] == ["KILLED", "KILLED"]
    assert (await api.call("GET", f"/jobs/{job_id}"))[1]["status"] == "KILLED"
    assert "jobId" not in killed["steps"][1]
    assert (await api.call("DELETE", f"/workflows/{started['workflowId']}"))[0] == 404


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([step("a", after=["b"]), step("b", after=["a"])], "cycle"),
        ([step("a", config={"x": "${steps.b.result}"}), step("b")], "does not come after"),
        ([step("a", after=["zzz"])], "unknown step"),
        ([step("a"), step("a")], "unique"),
    ],
)
async def test_bad_workflows_are_refused(api: Api, steps: list[dict[str, Any]], message: str) -> None:
    status, body, _ = await api.call("POST", "/workflows", data=json.dumps({"steps": steps}), headers=JSON)
    assert status == 400 and message in body["result"], body
    assert (await api.call("GET", "/workflows/no-such"))[0] == 404
