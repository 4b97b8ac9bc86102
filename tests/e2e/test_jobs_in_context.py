"""Jobs in one persistent context, with real spark-submit and local Spark (one JVM for the module)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.support import (
    EXAMPLES_EGG,
    SPARK_TEST_OVERRIDES,
    Api,
    build_jar,
    running_server,
    wait_until,
)

pytestmark = [pytest.mark.spark, pytest.mark.asyncio(loop_scope="module")]

JOB_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
DURATION = re.compile(r"^(Job not done yet|[0-9.E-]+ secs)$")
REPORT_KEYS = {"jobId", "startTime", "classPath", "context", "contextId", "duration", "status"}
WORD_COUNT = "example_jobs.word_count.WordCountSparkSessionJob"
SLEEP = "example_jobs.sleep_job.SleepJob"
CONTEXT = "shared"
MAX_JOBS = 3


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    work_dir = tmp_path_factory.mktemp("jobs-in-context")
    overrides = {
        **SPARK_TEST_OVERRIDES,
        "spark.jobserver.max-jobs-per-context": MAX_JOBS,
        "spark.jobserver.max-queued-jobs-per-context": 0,  # spark-jobserver's way: reject at once
    }
    async with running_server(work_dir, overrides) as api:
        await api.upload("examples")
        # Its Spark UI on: a test watches Spark's own REST API for the jobs a job starts.
        status, body, _ = await api.call("POST", f"/contexts/{CONTEXT}?spark.ui.enabled=true")
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context initialized"})
        yield api


async def spark_jobs_running(api: Api) -> bool:
    """Whether Spark's REST API (the context's UI) lists a running Spark job."""
    _, info, _ = await api.call("GET", f"/contexts/{CONTEXT}")
    jobs_url = f"{info['url']}/api/v1/applications/{info['applicationId']}/jobs?status=running"
    async with aiohttp.ClientSession() as session, session.get(jobs_url) as response:
        return response.status == 200 and bool(await response.json())


def job_path(main_class: str, *, app: str = "examples", sync: bool = False, extra: str = "") -> str:
    path = f"/jobs?appName={app}&classPath={main_class}&context={CONTEXT}"
    return path + ("&sync=true&timeout=60" if sync else "") + extra


async def test_sync_job_answers_its_result_and_reads_finished_later(api: Api) -> None:
    status, body, response = await api.call(
        "POST", job_path(WORD_COUNT, sync=True), data='input.strings = ["a", "b", "a"]'
    )
    assert status == 200
    assert response.content_type == "application/json"
    assert set(body) == {"jobId", "result"}
    assert body["result"] == {"a": 2, "b": 1}

    status, report, _ = await api.call("GET", f"/jobs/{body['jobId']}")
    assert status == 200
    assert set(report) == REPORT_KEYS | {"result"}
    assert report["status"] == "FINISHED"
    assert report["result"] == {"a": 2, "b": 1}
    assert report["context"] == CONTEXT
    assert JOB_TIME.match(report["startTime"])
    assert DURATION.match(report["duration"]) and report["duration"] != "Job not done yet"


async def test_async_job_answers_202_started_then_finishes_with_result(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", job_path(WORD_COUNT), data='{"input": {"strings": ["x", "y", "x"]}}'
    )
    assert status == 202
    assert set(body) == REPORT_KEYS
    assert body["status"] == "STARTED"
    assert body["duration"] == "Job not done yet"
    assert body["classPath"] == WORD_COUNT

    report = await api.wait_job_state(body["jobId"], "FINISHED", "ERROR")
    assert report["status"] == "FINISHED"
    assert report["result"] == {"x": 2, "y": 1}


async def test_job_config_is_the_posted_config_for_sync_and_async_jobs(api: Api) -> None:
    for sync in (True, False):
        status, body, _ = await api.call(
            "POST", job_path(WORD_COUNT, sync=sync), data='input.strings = ["c"]'
        )
        assert status in (200, 202)
        status, config, _ = await api.call("GET", f"/jobs/{body['jobId']}/config")
        assert status == 200
        assert config == {"input": {"strings": ["c"]}}


async def test_cp_and_main_class_may_come_from_the_body(api: Api) -> None:
    body = f'cp = ["examples"]\nmainClass = "{WORD_COUNT}"\ninput.strings = ["q"]'
    status, answer, _ = await api.call("POST", f"/jobs?context={CONTEXT}&sync=true&timeout=60", data=body)
    assert status == 200, answer
    assert answer["result"] == {"q": 1}


async def test_echo_job_results_keep_their_json_types(api: Api) -> None:
    payload = (
        '{"input": {"n": 5000, "f": 1.5, "s": "text", "b": true, "nothing": null,'
        ' "list": [1, [2, "b"]], "empty": {}}}'
    )
    status, body, _ = await api.call("POST", job_path("example_jobs.echo.EchoJob", sync=True), data=payload)
    assert status == 200
    assert body["result"] == {
        "n": 5000,
        "f": 1.5,
        "s": "text",
        "b": True,
        "nothing": None,
        "list": [1, [2, "b"]],
        "empty": {},
    }


async def test_list_jobs_is_newest_first_and_filters_by_status(api: Api) -> None:
    first = (await api.call("POST", job_path(WORD_COUNT, sync=True), data='input.strings = ["1"]'))[1][
        "jobId"
    ]
    second = (await api.call("POST", job_path(WORD_COUNT, sync=True), data='input.strings = ["2"]'))[1][
        "jobId"
    ]
    status, jobs, _ = await api.call("GET", "/jobs?limit=2")
    assert status == 200
    assert [job["jobId"] for job in jobs] == [second, first]
    assert all(set(job) == REPORT_KEYS for job in jobs)  # results of finished jobs are not listed

    status, finished, _ = await api.call("GET", "/jobs?status=finished&limit=1000")
    assert {job["status"] for job in finished} == {"FINISHED"}
    assert {first, second} <= {job["jobId"] for job in finished}
    assert (await api.call("GET", "/jobs?status=nonsense"))[1] == []


async def test_unknown_main_class_is_404_and_unknown_binary_is_404(api: Api) -> None:
    status, body, _ = await api.call("POST", job_path("example_jobs.nope.Nope"))
    assert (status, body) == (
        404,
        {"status": "ERROR", "result": "classPath example_jobs.nope.Nope not found"},
    )
    status, body, _ = await api.call("POST", job_path(WORD_COUNT, app="no-such-app"))
    assert (status, body) == (404, {"status": "ERROR", "result": "appName no-such-app not found"})
    status, body, _ = await api.call(
        "POST", f"/jobs?appName=examples&classPath={WORD_COUNT}&context=no-context"
    )
    assert (status, body) == (404, {"status": "ERROR", "result": "context no-context not found"})


async def test_loading_errors_get_the_contract_answers(api: Api) -> None:
    # A function where a job class is expected does not fit the context's job type.
    status, body, _ = await api.call("POST", job_path("example_jobs.sleep_job.read_seconds"))
    assert (status, body) == (400, {"status": "ERROR", "result": "Invalid job type for this context"})
    status, body, _ = await api.call(
        "POST", f"/jobs?cp=hdfs:///test/does/not/exist&mainClass={WORD_COUNT}&context={CONTEXT}"
    )
    assert status == 400
    assert body["status"] == "JOB LOADING FAILED: Malformed URL"
    assert "hdfs:///test/does/not/exist" in body["result"]["message"]
    status, body, _ = await api.call("POST", job_path(WORD_COUNT, extra="&callbackUrl=ftp%3A%2F%2Fexample"))
    assert (status, body) == (400, {"status": "ERROR", "result": "Callback Url has to be 'http'/'https'"})


async def test_failing_sync_job_answers_200_with_the_error_map(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", job_path("example_jobs.word_count.FailingSparkJob", sync=True), data='input.strings = ["a"]'
    )
    assert status == 200
    assert set(body) == {"jobId", "status", "result"}
    assert body["status"] == "ERROR"
    assert body["result"]["message"] == "Deliberate failure"
    assert body["result"]["errorClass"] == "ValueError"
    assert "Deliberate failure" in body["result"]["stack"]
    report = await api.wait_job_state(body["jobId"], "ERROR")
    assert report["result"]["message"] == "Deliberate failure"


async def test_compat_job_validation_problems_make_the_job_error(api: Api) -> None:
    status, body, _ = await api.call("POST", job_path(WORD_COUNT, sync=True))
    assert status == 200
    assert body["status"] == "ERROR"
    assert "config input.strings not found" in body["result"]["message"]


async def test_deleting_an_errored_job_answers_its_error_under_the_ERROR_key(api: Api) -> None:
    _, body, _ = await api.call("POST", job_path("example_jobs.failing_job.FailingRunJob", sync=True))
    status, answer, _ = await api.call("DELETE", f"/jobs/{body['jobId']}")
    assert status == 200
    assert answer["status"] == "ERROR"
    assert answer["ERROR"]["message"] == "Deliberate failure"


async def test_finished_and_unknown_jobs_cannot_be_killed(api: Api) -> None:
    _, body, _ = await api.call("POST", job_path(WORD_COUNT, sync=True), data='input.strings = ["a"]')
    status, answer, _ = await api.call("DELETE", f"/jobs/{body['jobId']}")
    assert (status, answer) == (404, {"status": "ERROR", "result": f"No running job with ID {body['jobId']}"})
    for method, path in (("DELETE", "/jobs/nope"), ("GET", "/jobs/nope"), ("GET", "/jobs/nope/config")):
        status, answer, _ = await api.call(method, path)
        assert (status, answer) == (404, {"status": "ERROR", "result": "No such job ID nope"})


async def test_killing_a_running_job_cancels_its_spark_work_and_it_stays_killed(api: Api) -> None:
    status, body, _ = await api.call("POST", job_path(SLEEP), data="sleep.seconds = 120")
    assert status == 202
    job_id = body["jobId"]
    await api.wait_job_state(job_id, "RUNNING")
    # Once its Spark job runs: the kill must cancel the job group's Spark work, which an
    # interrupt of the job's thread alone would not (the thread waits inside py4j). Tasks still
    # running would hold both cores for two minutes, past the sync timeout below.
    await wait_until(lambda: spark_jobs_running(api), what="the job's Spark job running")
    status, answer, _ = await api.call("DELETE", f"/jobs/{job_id}")
    assert (status, answer) == (200, {"status": "KILLED"})
    report = await api.wait_job_state(job_id, "KILLED")
    assert report["result"]["message"] == f"Job {job_id} killed"
    # The context still works, and the driver's late report of the cancelled job changed nothing.
    status, body, _ = await api.call("POST", job_path(WORD_COUNT, sync=True), data='input.strings = ["k"]')
    assert (status, body["result"]) == (200, {"k": 1})
    assert await api.job_state(job_id) == "KILLED"


async def test_killing_a_python_only_job_interrupts_its_thread(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", job_path("example_jobs.sleep_job.PythonSleepJob"), data="sleep.seconds = 120"
    )
    job_id = body["jobId"]
    await api.wait_job_state(job_id, "RUNNING")
    status, answer, _ = await api.call("DELETE", f"/jobs/{job_id}")
    assert (status, answer) == (200, {"status": "KILLED"})
    # Its slot comes back once the driver's thread really stopped (PythonSleepJob sleeps in 1 s
    # steps); then all slots can hold long jobs at once again.
    accepted: list[str] = []

    async def all_slots_taken() -> bool:
        status, body, _ = await api.call("POST", job_path(SLEEP), data="sleep.seconds = 120")
        if status == 202:
            accepted.append(body["jobId"])
        return len(accepted) == MAX_JOBS

    await wait_until(all_slots_taken, timeout_s=15, what="every slot accepting a job")
    for job in accepted:
        await api.call("DELETE", f"/jobs/{job}")
    for job in accepted:
        await api.wait_job_state(job, "KILLED")


# A kill lands in a job's thread at its next Python instruction, which can be right after py4j sent a
# command and before it read the answer. This job leaves its thread's connection in that state
# itself (the timing of a real kill makes it rare), and keeps it, as a job keeping its last error
# keeps the frames that hold it.
INTERRUPTED_CALL_JOB = b"""
import time

from py4j import protocol

KEPT = []


def interrupted(spark):
    client = spark.sparkContext._gateway._gateway_client
    connection = client._get_connection()  # this thread's own
    command = protocol.REFLECTION_COMMAND_NAME + protocol.REFL_GET_UNKNOWN_SUB_COMMAND_NAME
    command += "java\\n" + spark.sparkContext._jvm._id + "\\n" + protocol.END_COMMAND_PART
    connection.socket.sendall(command.encode())  # its answer is never read
    KEPT.append(connection)
    while True:
        time.sleep(0.1)


def count(spark):
    return spark.sql("SELECT count(*) FROM range(1000)").collect()[0][0]
"""


async def test_a_job_killed_in_the_middle_of_a_py4j_call_leaves_its_thread_usable(api: Api) -> None:
    headers = {"Content-Type": "text/x-python"}
    status, body, _ = await api.call(
        "POST", "/binaries/interrupted", data=INTERRUPTED_CALL_JOB, headers=headers
    )
    assert status == 201, body
    path = f"/jobs?cp=interrupted&context={CONTEXT}&mainClass=interrupted:"
    status, body, _ = await api.call("POST", path + "interrupted")
    job_id = body["jobId"]
    await api.wait_job_state(job_id, "RUNNING")
    assert (await api.call("DELETE", f"/jobs/{job_id}"))[0] == 200
    await api.wait_job_state(job_id, "KILLED")
    # The driver's job threads take jobs in turn: more jobs than it has threads reach the killed
    # job's thread too. Before, that thread read the stale answer: "java does not exist in the JVM".
    for _ in range(MAX_JOBS * 2 + 1):
        status, body, _ = await api.call("POST", path + "count&sync=true&timeout=60")
        assert (status, body.get("result")) == (200, 1000), body


async def test_jobs_beyond_the_slots_get_503_no_slots_available(api: Api) -> None:
    running = []
    for _ in range(MAX_JOBS):
        status, body, _ = await api.call("POST", job_path(SLEEP), data="sleep.seconds = 120")
        assert status == 202
        running.append(body["jobId"])
    status, body, _ = await api.call("POST", job_path(SLEEP), data="sleep.seconds = 1")
    assert status == 503
    assert body == {
        "status": "NO SLOTS AVAILABLE",
        "result": f"Too many running jobs ({MAX_JOBS}) for job context '{CONTEXT}'",
    }
    for job_id in running:
        assert (await api.call("DELETE", f"/jobs/{job_id}"))[0] == 200
    for job_id in running:
        await api.wait_job_state(job_id, "KILLED")


async def test_binary_in_use_cannot_be_deleted_until_its_job_ends(api: Api) -> None:
    await api.upload("in-use")
    status, body, _ = await api.call("POST", job_path(SLEEP, app="in-use"), data="sleep.seconds = 120")
    job_id = body["jobId"]
    status, answer, _ = await api.call("DELETE", "/binaries/in-use")
    assert status == 403
    assert answer == {"status": "ERROR", "result": f"Binary is in use by job(s): {job_id}"}
    await api.call("DELETE", f"/jobs/{job_id}")
    await api.wait_job_state(job_id, "KILLED")
    assert (await api.call("DELETE", "/binaries/in-use"))[0] == 200
    assert (await api.call("GET", "/binaries/in-use"))[0] == 404


async def test_sync_job_still_running_at_its_timeout_answers_202_with_its_report(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", job_path(SLEEP, extra="&sync=true&timeout=1"), data="sleep.seconds = 4"
    )
    assert status == 202
    assert body["status"] == "STARTED"
    report = await api.wait_job_state(body["jobId"], "FINISHED")
    assert report["result"] == 80


async def test_udf_defined_in_the_job_package_runs_on_executors(api: Api) -> None:
    status, body, _ = await api.call("POST", job_path("example_jobs.udf_job.UdfJob", sync=True))
    assert status == 200, body
    assert body["result"] == [["hello", "HELLO!"], ["world", "WORLD!"]]


async def test_an_egg_runs_like_a_wheel(api: Api) -> None:
    await api.upload("examples-egg", EXAMPLES_EGG, "application/python-archive")
    status, body, _ = await api.call(
        "POST", job_path(WORD_COUNT, app="examples-egg", sync=True), data='input.strings = ["e"]'
    )
    assert (status, body.get("result")) == (200, {"e": 1})
    _, binaries, _ = await api.call("GET", "/binaries")
    assert binaries["examples-egg"]["binary-type"] == "Egg"


async def test_bad_requests_get_the_contract_answers(api: Api) -> None:
    cases = [
        (
            "/jobs?classPath=x",
            "",
            "Cannot parse config: To start the job appName or cp parameters should be configured!",
        ),
        ("/jobs?appName=examples", "", "Cannot parse config: classPath parameter is missing!"),
        ("/jobs?cp=examples", "", "Cannot parse config: mainClass parameter is missing!"),
    ]
    for path, data, message in cases:
        status, body, _ = await api.call("POST", path, data=data)
        assert (status, body) == (400, {"status": "ERROR", "result": message})
    status, body, _ = await api.call("POST", job_path(WORD_COUNT), data="Not parseable jobConfig!!")
    assert status == 400
    assert body["status"] == "ERROR" and body["result"].startswith("Cannot parse config")
    status, body, _ = await api.call("POST", job_path(WORD_COUNT, extra="&sync=maybe"))
    assert status == 400 and "sync" in body["result"]


async def test_native_function_and_class_jobs(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", job_path("example_jobs.native:word_count", sync=True), data='input.strings = ["a", "b", "a"]'
    )
    assert (status, body["result"]) == (200, {"a": 2, "b": 1})
    status, body, _ = await api.call("POST", job_path("example_jobs.native:whoami", sync=True))
    assert (status, body["result"]) == (200, {"jobId": body["jobId"], "context": CONTEXT})
    status, body, _ = await api.call(
        "POST", job_path("example_jobs.native.Average", sync=True), data="input.numbers = [1, 2, 3]"
    )
    assert (status, body["result"]) == (200, 2.0)


async def test_native_validation_failure_is_400_before_the_job_runs(api: Api) -> None:
    status, body, _ = await api.call("POST", job_path("example_jobs.native.Average"))
    assert status == 400
    assert body["status"] == "VALIDATION FAILED"
    assert body["result"]["message"] == "Validation failed: input.numbers is missing"
    assert body["result"]["errorClass"] == "sparkjobserver.native.ValidationError"


async def test_sql_job_returns_columns_rows_and_truncation(api: Api) -> None:
    statement = 'sql = "SELECT id, id * 2 AS twice FROM range(5)"'
    path = f"/jobs?context={CONTEXT}&sync=true&timeout=60"
    status, body, _ = await api.call("POST", path, data=statement)
    assert status == 200, body
    assert body["result"] == {
        "columns": [{"name": "id", "type": "bigint"}, {"name": "twice", "type": "bigint"}],
        "rows": [[0, 0], [1, 2], [2, 4], [3, 6], [4, 8]],
        "truncated": False,
    }
    status, body, _ = await api.call("POST", path, data=statement + "\nspark.jobserver.sql.max-rows = 2")
    assert (body["result"]["rows"], body["result"]["truncated"]) == ([[0, 0], [1, 2]], True)
    status, body, _ = await api.call("POST", path + "&sql=SELECT%20'x'%20AS%20letter")
    assert body["result"]["rows"] == [["x"]]
    assert (await api.call("GET", f"/jobs/{body['jobId']}/config"))[1] == {"sql": "SELECT 'x' AS letter"}


async def test_sql_analysis_error_is_a_job_error_with_sparks_message(api: Api) -> None:
    path = f"/jobs?context={CONTEXT}&sync=true&timeout=60"
    status, body, _ = await api.call("POST", path, data='sql = "SELECT * FROM no_such_table"')
    assert (status, body["status"]) == (200, "ERROR")
    assert "no_such_table" in body["result"]["message"]


async def test_jobs_share_a_named_dataframe_computed_once(api: Api) -> None:
    first = (await api.call("POST", job_path("example_jobs.native:cache_numbers", sync=True)))[1]
    second = (await api.call("POST", job_path("example_jobs.native:cache_numbers", sync=True)))[1]
    assert first["result"] == {"rows": 1000, "computedHere": True}
    assert second["result"] == {"rows": 1000, "computedHere": False}
    status, objects, _ = await api.call("GET", f"/contexts/{CONTEXT}/objects")
    assert (status, objects) == (
        200,
        [{"name": "numbers", "type": "DataFrame", "storageLevel": "MEMORY_AND_DISK"}],
    )
    dropped = (await api.call("POST", job_path("example_jobs.native:drop_numbers", sync=True)))[1]
    assert dropped["result"] == []
    assert (await api.call("GET", f"/contexts/{CONTEXT}/objects"))[1] == []
    assert (await api.call("GET", "/contexts/nowhere/objects"))[0] == 404


async def test_jvm_job_from_a_jar_uploaded_after_the_context_started(api: Api, tmp_path: Path) -> None:
    await api.upload("sum-jar", build_jar(tmp_path), "application/java-archive")
    path = f"/jobs?appName=sum-jar&context={CONTEXT}&sync=true&timeout=60&classPath="
    status, body, _ = await api.call("POST", path + "example.SumJob", data="input.x = 1")
    assert (status, body.get("result")) == (200, {"sum": 45, "configMentionsInput": True}), body
    status, body, _ = await api.call("POST", path + "example.Nope")
    assert (status, body) == (404, {"status": "ERROR", "result": "classPath example.Nope not found"})


async def test_shared_context_is_still_running_after_all_of_it(api: Api, tmp_path: Path) -> None:
    status, body, _ = await api.call("GET", f"/contexts/{CONTEXT}")
    assert status == 200
    assert body["state"] == "RUNNING"
    assert body["applicationId"].startswith("local-")
    assert CONTEXT in (await api.call("GET", "/contexts"))[1]


PROGRESSING_JOB = b"""
import logging
import time

log = logging.getLogger("e2e.progress")


def slow(value):
    time.sleep(0.5)
    return value % 2, 1


def main(spark, config):
    print("starting the slow job")
    log.warning("about to run Spark")
    counts = spark.sparkContext.parallelize(range(16), 4).map(slow).reduceByKey(lambda a, b: a + b)
    result = sorted(counts.collect())
    print("counted", result)
    return result
"""


async def test_a_spark_job_shows_progress_while_it_runs_and_keeps_what_it_printed(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", "/binaries/progressing", data=PROGRESSING_JOB, headers={"Content-Type": "text/x-python"}
    )
    assert status == 201, body
    path = f"/jobs?cp=progressing&mainClass=progressing:main&context={CONTEXT}"
    status, body, _ = await api.call("POST", path)
    assert status == 202, body
    job_id = body["jobId"]

    async def progress() -> dict | None:
        _, report, _ = await api.call("GET", f"/jobs/{job_id}")
        return report.get("progress")

    seen = await wait_until(progress, timeout_s=60, what="the job's progress")
    assert seen["jobs"] == {"total": 1, "active": 1, "completed": 0, "failed": 0}
    assert seen["stages"]["total"] == 2  # the map side and the reduce side of reduceByKey
    tasks = seen["tasks"]
    assert tasks["total"] == 8 and tasks["failed"] == 0 and tasks["active"] + tasks["completed"] <= 8

    report = await api.wait_job_state(job_id, "FINISHED")
    assert report["result"] == [[0, 8], [1, 8]] and "progress" not in report
    status, page, _ = await api.call("GET", f"/jobs/{job_id}/logs")
    assert status == 200 and page["from"] == 0 and page["total"] == 3
    assert page["log"][0] == "starting the slow job"
    assert page["log"][1].endswith("WARNING e2e.progress: about to run Spark")
    assert page["log"][2] == "counted [(0, 8), (1, 8)]"
    # Spark's log4j lines are in the context's log, not the job's.
    _, context_log, _ = await api.call("GET", f"/contexts/{CONTEXT}/logs?from=0&size=100000")
    assert any("starting the slow job" in line for line in context_log["log"])
    assert any(" INFO " in line and "DAGScheduler" in line for line in context_log["log"])
