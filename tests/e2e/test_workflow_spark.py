"""A daily-ETL-shaped workflow with real spark-submit and local Spark, one context (one JVM) for all
its steps: a SQL ingest, two transforms side by side that read its rows by reference, and a SQL
report over both transforms' results."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.support import EXAMPLES_EGG, SPARK_TEST_OVERRIDES, Api, running_server, wait_until

pytestmark = [pytest.mark.spark, pytest.mark.asyncio(loop_scope="module")]

CONTEXT = "etl"
PEOPLE = "('bob', 20, 1200), ('jon', 21, 1400), ('mary', 20, 1300), ('sue', 21, 1600)"
# HOCON text: the reference becomes the ingest's result (JSON), whose rows the job's input names.
TRANSFORM_CONFIG = "ingested = ${steps.ingest.result}\ninput.data = ${ingested.rows}"
REPORT = (
    "SELECT CAST(a[0] AS INT) AS age, a[1] AS average_salary,"
    " size(filter(from_json('${steps.rank.result}', 'array<array<string>>'),"
    " p -> CAST(p[1] AS INT) = CAST(a[0] AS INT))) AS people"
    " FROM (SELECT explode(from_json('${steps.average.result}', 'array<array<double>>')) AS a)"
    " ORDER BY age"
)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running_server(tmp_path_factory.mktemp("workflow-spark"), SPARK_TEST_OVERRIDES) as api:
        await api.upload("examples", EXAMPLES_EGG, "application/python-egg")
        status, body, _ = await api.call("POST", f"/contexts/{CONTEXT}")
        assert status == 200, body
        yield api


def step(name: str, config: Any, *, after: tuple[str, ...] = (), class_path: str = "") -> dict[str, Any]:
    job: dict[str, Any] = {"context": CONTEXT, "config": config}
    if class_path:
        job.update(appName="examples", classPath=class_path)
    return {"name": name, "after": list(after), "job": job}


async def test_a_daily_etl_workflow_runs_its_steps_in_one_context_and_passes_results_on(api: Api) -> None:
    workflow = {
        "name": "daily-etl",
        "steps": [
            step("ingest", {"sql": f"SELECT * FROM VALUES {PEOPLE} AS people(name, age, salary)"}),
            step(
                "rank",
                TRANSFORM_CONFIG,
                after=("ingest",),
                class_path="example_jobs.session_window.SessionWindowJob",
            ),
            step(
                "average",
                TRANSFORM_CONFIG,
                after=("ingest",),
                class_path="example_jobs.sql_average.SQLAverageJob",
            ),
            step("report", {"sql": REPORT}, after=("rank", "average")),
        ],
    }
    status, started, _ = await api.call(
        "POST", "/workflows", data=json.dumps(workflow), headers={"Content-Type": "application/json"}
    )
    assert status == 202, started

    async def ended() -> dict[str, Any] | None:
        body = (await api.call("GET", f"/workflows/{started['workflowId']}"))[1]
        return body if body["state"] != "RUNNING" else None

    done = await wait_until(ended, timeout_s=60, what="the workflow's end")
    assert done["state"] == "FINISHED", done
    assert [s["state"] for s in done["steps"]] == ["FINISHED"] * 4
    jobs = {s["name"]: (await api.call("GET", f"/jobs/{s['jobId']}"))[1] for s in done["steps"]}
    assert len({job["jobId"] for job in jobs.values()}) == 4
    assert {job["status"] for job in jobs.values()} == {"FINISHED"}
    assert {job["context"] for job in jobs.values()} == {CONTEXT}, "one context, one JVM"
    assert jobs["ingest"]["result"]["rows"] == [
        ["bob", 20, 1200],
        ["jon", 21, 1400],
        ["mary", 20, 1300],
        ["sue", 21, 1600],
    ]
    assert jobs["rank"]["result"] == [["bob", 20, 1], ["mary", 20, 2], ["jon", 21, 1], ["sue", 21, 2]]
    assert jobs["average"]["result"] == [[20, 1250.0], [21, 1500.0]]
    assert jobs["report"]["result"]["rows"] == [[20, 1250.0, 2], [21, 1500.0, 2]]
    # The transforms started once the ingest had ended; the report once both had.
    ingest_end = _end(jobs["ingest"])
    assert min(_start(jobs["rank"]), _start(jobs["average"])) >= ingest_end
    assert _start(jobs["report"]) >= max(_end(jobs["rank"]), _end(jobs["average"]))
    assert (await api.call("GET", "/contexts"))[1] == [CONTEXT]


def _start(job: dict[str, Any]) -> float:
    import datetime

    return datetime.datetime.fromisoformat(job["startTime"]).timestamp()


def _end(job: dict[str, Any]) -> float:
    return _start(job) + float(job["duration"].split()[0])
