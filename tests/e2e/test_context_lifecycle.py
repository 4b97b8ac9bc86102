"""Contexts from creation to their last state, with real drivers: stop, kill, ad-hoc, boot, reset."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.support import SPARK_TEST_OVERRIDES, processes_mentioning, running_server, wait_until

pytestmark = pytest.mark.spark

INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
WORD_COUNT = "example_jobs.word_count.WordCountSparkSessionJob"


async def test_context_lives_from_create_to_finished_and_its_name_can_be_reused(tmp_path: Path) -> None:
    overrides = {**SPARK_TEST_OVERRIDES, "spark.jobserver.context-deletion-timeout": "20s"}
    async with running_server(tmp_path, overrides) as api:
        status, body, _ = await api.call("POST", "/contexts/life?num-cpu-cores=1&spark.executor.cores=1")
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context initialized"})

        status, info, _ = await api.call("GET", "/contexts/life")
        assert status == 200
        assert set(info) == {"id", "name", "startTime", "endTime", "state", "applicationId"}
        assert (info["name"], info["state"], info["endTime"]) == ("life", "RUNNING", "Empty")
        assert INSTANT.match(info["startTime"])
        assert (await api.call("GET", "/contexts"))[1] == ["life"]

        status, body, _ = await api.call("POST", "/contexts/life")
        assert (status, body) == (400, {"status": "ERROR", "result": "context life exists"})
        status, body, _ = await api.call("POST", "/contexts/1life")
        assert (status, body["status"]) == (400, "ERROR")
        assert body["result"].startswith("context name must start with letters")

        status, body, _ = await api.call("DELETE", "/contexts/life")
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context stopped"})
        status, info, _ = await api.call("GET", "/contexts/life")
        assert (status, info["state"]) == (200, "FINISHED")
        assert INSTANT.match(info["endTime"])
        assert (await api.call("GET", "/contexts"))[1] == []
        assert not processes_mentioning(info["id"])

        status, body, _ = await api.call("DELETE", "/contexts/life")
        assert (status, body) == (404, {"status": "ERROR", "result": "context life not found"})
        status, body, _ = await api.call("GET", "/contexts/none")
        assert (status, body) == (404, {"status": "ERROR", "result": "can't find context with name none"})

        status, _, _ = await api.call("POST", "/contexts/life")
        assert status == 200
        status, new_info, _ = await api.call("GET", "/contexts/life")
        assert new_info["id"] != info["id"] and new_info["state"] == "RUNNING"


async def test_driver_killed_mid_job_leaves_context_killed_and_job_error(tmp_path: Path) -> None:
    async with running_server(tmp_path, SPARK_TEST_OVERRIDES) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/victim"))[0] == 200
        _, info, _ = await api.call("GET", "/contexts/victim")
        _, body, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.sleep_job.SleepJob&context=victim",
            data="sleep.seconds = 120",
        )
        job_id = body["jobId"]
        await api.wait_job_state(job_id, "RUNNING")

        python_drivers = [pid for pid in processes_mentioning(info["id"]) if _is_python(pid)]
        assert python_drivers, "the Python driver process should be running"
        for pid in python_drivers:
            os.kill(pid, signal.SIGKILL)

        context = await api.wait_context_state("victim", "KILLED", "ERROR", timeout_s=20)
        assert context["state"] == "KILLED"
        report = await api.wait_job_state(job_id, "ERROR", timeout_s=20)
        assert f"Unexpected termination of context {info['id']}" in report["result"]["message"]
        await wait_until(lambda: _none_left(info["id"]), timeout_s=10, what="driver processes gone")
        assert (await api.call("GET", "/contexts"))[1] == []


async def test_adhoc_job_gets_its_own_context_that_stops_after_it(tmp_path: Path) -> None:
    async with running_server(tmp_path, SPARK_TEST_OVERRIDES) as api:
        await api.upload("examples")
        # The ad-hoc context takes its settings from the job config: here a SparkContext factory.
        body = 'spark.context-settings.context-factory = "spark.jobserver.context.DefaultSparkContextFactory"'
        status, answer, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.contexts.SparkContextJob&sync=true&timeout=90",
            data=body,
        )
        assert (status, answer.get("result")) == (200, 45), answer
        _, report, _ = await api.call("GET", f"/jobs/{answer['jobId']}")
        assert report["context"].endswith("-example_jobs.contexts.SparkContextJob")

        context = await api.wait_context_state(report["context"], "FINISHED", timeout_s=30)
        assert context["id"] == report["contextId"]
        await wait_until(lambda: _none_left(report["contextId"]), timeout_s=10, what="ad-hoc driver gone")


async def test_configured_contexts_start_at_boot_and_come_back_after_reset(tmp_path: Path) -> None:
    overrides = {**SPARK_TEST_OVERRIDES, "spark.contexts.boot-ctx.num-cpu-cores": 1}
    async with running_server(tmp_path, overrides) as api:
        first = await api.wait_context_state("boot-ctx", "RUNNING", timeout_s=90)
        status, body, _ = await api.call("PUT", "/contexts?reset=reboot")
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context reset"})
        second = await api.wait_context_state("boot-ctx", "RUNNING", timeout_s=90)
        assert second["id"] != first["id"]
        assert not processes_mentioning(first["id"])
        status, body, _ = await api.call("PUT", "/contexts?reset=other")
        assert (status, body) == (500, {"status": "ERROR", "result": "ERROR"})


async def test_slow_stop_answers_202_with_location_and_finishes_later(tmp_path: Path) -> None:
    # A job that ignores its kill holds the driver's stop for 3 s; with a 2.1 s deletion timeout
    # the request itself waits only 0.1 s, so the stop goes on after the answer.
    overrides = {**SPARK_TEST_OVERRIDES, "spark.jobserver.context-deletion-timeout": "2100ms"}
    async with running_server(tmp_path, overrides) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/slow"))[0] == 200
        _, body, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.sleep_job.StubbornJob&context=slow",
            data="sleep.seconds = 3",
        )
        await api.wait_job_state(body["jobId"], "RUNNING")
        status, answer, response = await api.call("DELETE", "/contexts/slow")
        assert status == 202
        assert answer == ""
        assert response.headers["Location"].endswith("/contexts/slow")
        assert (await api.call("GET", "/contexts/slow"))[1]["state"] == "STOPPING"
        status, answer, _ = await api.call(
            "POST", "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=slow"
        )
        assert (status, answer) == (409, {"status": "ERROR", "result": "Context stop in progress"})
        status, answer, response = await api.call("DELETE", "/contexts/slow")
        assert status == 202  # a stop already in progress
        await api.wait_context_state("slow", "FINISHED", timeout_s=30)
        report = await api.wait_job_state(body["jobId"], "ERROR")
        assert report["result"]["message"] == "Context (slow) for this job was terminated"


async def _none_left(context_id: str) -> bool:
    return not processes_mentioning(context_id)


def _is_python(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return (
                b"driver/__main__.py" in cmdline.read()
                and b"java" not in Path(f"/proc/{pid}/exe").resolve().name.encode()
            )
    except OSError:
        return False


async def test_hive_context_keeps_hive_tables_in_its_own_metastore(tmp_path: Path) -> None:
    async with running_server(tmp_path, SPARK_TEST_OVERRIDES) as api:
        factory = "spark.jobserver.python.PythonHiveContextFactory"
        assert (await api.call("POST", f"/contexts/hive?context-factory={factory}"))[0] == 200
        _, info, _ = await api.call("GET", "/contexts/hive")
        sql = "/jobs?context=hive&sync=true&timeout=120"
        status, body, _ = await api.call("POST", sql, data='sql = "SET spark.sql.catalogImplementation"')
        assert (status, body["result"]["rows"]) == (200, [["spark.sql.catalogImplementation", "hive"]]), body
        status, body, _ = await api.call(
            "POST", sql, data='sql = "CREATE TABLE IF NOT EXISTS kv (k INT, v STRING) USING hive"'
        )
        assert (status, body.get("status")) == (200, None), body
        status, body, _ = await api.call("POST", sql, data='sql = "SHOW TABLES"')
        assert "kv" in [row[1] for row in body["result"]["rows"]]
        # The metastore lives in the context's own folder, which goes with the context.
        driver_dir = api.settings.work_dir / "drivers" / info["id"]
        assert (driver_dir / "metastore_db").is_dir()
        assert (await api.call("DELETE", "/contexts/hive"))[0] == 200
        await wait_until(lambda: _gone_folder(driver_dir), timeout_s=10, what="driver folder removed")


async def _gone_folder(folder: Path) -> bool:
    return not folder.exists()
