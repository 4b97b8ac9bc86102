"""``/metrics`` counts what a user does (requests, job ends, bus messages, store operations, lost
drivers) and shows what runs now; each request gets a line in the access log with its request id
(stand-in drivers, no JVM)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import structlog
from prometheus_client.parser import text_string_to_metric_families

from tests.support import FAKE_SPARK_HOMES, Api, processes_mentioning, running_server, wait_until

LIGHT = {"spark.home": str(FAKE_SPARK_HOMES / "light")}
ECHO = "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=watched&sync=true"
SLEEP = "/jobs?appName=examples&classPath=example_jobs.sleep_job.PythonSleepJob&context=watched"
FAILING = "/jobs?appName=examples&classPath=example_jobs.failing_job.FailingRunJob&context=watched&sync=true"


async def scrape(api: Api) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text, response = await api.call("GET", "/metrics")
    assert status == 200 and response.content_type == "text/plain", text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_requests_jobs_bus_messages_and_store_operations(tmp_path: Path) -> None:
    async with running_server(tmp_path, LIGHT) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/watched"))[0] == 200
        before = await scrape(api)
        assert value(before, "jobserver_contexts", phase="running") == 1

        assert (await api.call("POST", ECHO, data='{"input": 1}'))[0] == 200
        assert (await api.call("POST", FAILING))[1]["status"] == "ERROR"
        _, sleeper, _ = await api.call("POST", SLEEP, data="sleep.seconds = 30")
        await api.wait_job_state(sleeper["jobId"], "RUNNING")
        during = await scrape(api)
        assert value(during, "jobserver_context_jobs_running", context="watched") == 1
        assert value(during, "jobserver_jobs", state="running") == 1
        assert (await api.call("DELETE", f"/jobs/{sleeper['jobId']}"))[0] == 200
        after = await scrape(api)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("jobserver_jobs_ended_total", state="FINISHED") == 1
    assert grew("jobserver_jobs_ended_total", state="ERROR") == 1
    assert grew("jobserver_jobs_ended_total", state="KILLED") == 1
    assert grew("jobserver_job_duration_seconds_count", state="FINISHED") == 1
    assert grew("jobserver_http_requests_total", method="POST", route="/jobs", status="200") == 2
    assert grew("jobserver_http_requests_total", method="POST", route="/jobs", status="202") == 1
    assert grew("jobserver_http_request_duration_seconds_count", method="POST", route="/jobs") == 3
    assert grew("jobserver_bus_messages_total", direction="out", type="start_job") == 3
    assert grew("jobserver_bus_messages_total", direction="in", type="job_finished") == 1
    assert grew("jobserver_store_operation_duration_seconds_count", backend="sqlite", kind="read") > 0
    assert value(after, "jobserver_context_jobs_running", context="watched") == 0


async def test_a_driver_that_dies_unasked_counts_as_lost(tmp_path: Path) -> None:
    async with running_server(tmp_path, LIGHT) as api:
        _, context, _ = await api.call("POST", "/contexts/doomed")
        before = await scrape(api)
        for pid in processes_mentioning(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)

        async def ended() -> bool:
            return (await api.call("GET", "/contexts/doomed"))[1]["state"] in ("ERROR", "KILLED")

        await wait_until(ended, what="the context to end")
        after = await scrape(api)
    assert context["status"] == "SUCCESS"
    lost = value(after, "jobserver_drivers_lost_total", reason="exited")
    assert lost - value(before, "jobserver_drivers_lost_total", reason="exited") == 1


async def test_each_request_has_an_access_log_line_and_its_request_id(tmp_path: Path) -> None:
    async with running_server(tmp_path, LIGHT) as api:
        with structlog.testing.capture_logs() as lines:
            status, _, response = await api.call("GET", "/jobs", headers={"X-Request-Id": "trace-42"})
            _, _, unnamed = await api.call("GET", "/binaries/missing")
    assert (status, response.headers["X-Request-Id"]) == (200, "trace-42")
    requests = [line for line in lines if line["event"] == "request"]
    assert [(line["request_id"], line["route"], line["status"]) for line in requests] == [
        ("trace-42", "/jobs", 200),
        (unnamed.headers["X-Request-Id"], "/binaries/{name}", 404),
    ]
    assert len(unnamed.headers["X-Request-Id"]) == 16 and requests[0]["duration_ms"] >= 0


async def test_the_access_log_can_be_switched_off(tmp_path: Path) -> None:
    async with running_server(tmp_path, {**LIGHT, "spark.jobserver.access-log": False}) as api:
        with structlog.testing.capture_logs() as lines:
            assert (await api.call("GET", "/jobs"))[0] == 200
    assert not [line for line in lines if line["event"] == "request"]
