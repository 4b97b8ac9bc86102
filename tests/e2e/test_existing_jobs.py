"""Jobs users have today run unchanged (real spark-submit, local Spark, one JVM for the module):
packages built the way spark-jobserver builds its examples, which bundle its own ``sparkjobserver``,
and melin/spark-jobserver's ``main(sparkSession)`` modules."""

from __future__ import annotations

import zipfile
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.sjs_packages import build_sjs_packages
from tests.support import SPARK_TEST_OVERRIDES, Api, running_server

pytestmark = [pytest.mark.spark, pytest.mark.asyncio(loop_scope="module")]

CONTEXT = "existing"

# A job as melin/spark-jobserver's users write it: the module is pasted into melin's template,
# which star-imports pyspark.sql and pyspark.sql.types and defines info/warn/error around it.
MELIN_JOB = """\
SCHEMA = StructType([StructField("word", StringType())])


def main(sparkSession):
    info("counting words")
    frame = sparkSession.createDataFrame([Row(word="a"), Row(word="b"), Row(word="a")], SCHEMA)
    return {row["word"]: row["count"] for row in frame.groupBy("word").count().collect()}
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    work_dir = tmp_path_factory.mktemp("existing-jobs")
    egg, wheel = build_sjs_packages(tmp_path_factory.mktemp("sjs-build"))
    melin = work_dir / "melin_jobs.zip"
    with zipfile.ZipFile(melin, "w") as archive:
        archive.writestr("melin_job.py", MELIN_JOB)
    async with running_server(work_dir, SPARK_TEST_OVERRIDES) as api:
        await api.upload("sjs-egg", egg, "application/python-archive")
        await api.upload("sjs-wheel", wheel, "application/python-wheel")
        await api.upload("examples")
        await api.upload("melin", melin, "application/python-archive")
        lone = work_dir / "melin_single.py"  # as melin's users have them: one module, uploaded alone
        lone.write_text(MELIN_JOB)
        await api.upload("melin_single", lone, "text/x-python")
        status, body, _ = await api.call("POST", f"/contexts/{CONTEXT}")
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context initialized"})
        yield api


def job_path(app: str, main_class: str) -> str:
    return f"/jobs?appName={app}&classPath={main_class}&context={CONTEXT}&sync=true&timeout=60"


@pytest.mark.parametrize("app", ["sjs-egg", "sjs-wheel"])
async def test_a_package_bundling_spark_jobservers_api_validates_and_runs(api: Api, app: str) -> None:
    status, body, _ = await api.call(
        "POST",
        job_path(app, "example_jobs.word_count.WordCountSparkSessionJob"),
        data='input.strings = ["a", "b", "a"]',
    )
    assert (status, body.get("result")) == (200, {"a": 2, "b": 1}), body


@pytest.mark.parametrize("app", ["sjs-egg", "sjs-wheel"])
async def test_validation_problems_built_by_the_packages_own_api_make_the_job_error(
    api: Api, app: str
) -> None:
    status, body, _ = await api.call(
        "POST", job_path(app, "example_jobs.word_count.WordCountSparkSessionJob")
    )
    assert (status, body["status"]) == (200, "ERROR")
    assert body["result"]["message"] == "Validation failed: config input.strings not found"
    assert (await api.wait_job_state(body["jobId"], "ERROR"))["status"] == "ERROR"


async def test_a_failing_job_of_such_a_package_answers_its_error(api: Api) -> None:
    status, body, _ = await api.call("POST", job_path("sjs-wheel", "example_jobs.failing_job.FailingRunJob"))
    assert (status, body["status"]) == (200, "ERROR")
    assert (body["result"]["message"], body["result"]["errorClass"]) == ("Deliberate failure", "Exception")


async def test_the_job_gets_spark_jobservers_runtime_and_validate_gets_none(api: Api) -> None:
    status, body, _ = await api.call("POST", job_path("sjs-egg", "example_jobs.word_count.WhoAmIJob"))
    assert status == 200, body
    assert body["result"] == {
        "jobId": body["jobId"],
        "validateRuntime": "None",
        "contextConfigType": "ConfigTree",
    }


async def test_the_servers_own_apis_still_serve_jobs_after_such_a_package(api: Api) -> None:
    # The bundled copy has taken the name sparkjobserver in this driver by now.
    await api.call("POST", job_path("sjs-wheel", "example_jobs.word_count.WordCountSparkSessionJob"))
    status, body, _ = await api.call("POST", job_path("examples", "example_jobs.native.Average"))
    assert (status, body["status"]) == (400, "VALIDATION FAILED")
    assert body["result"]["message"] == "Validation failed: input.numbers is missing"
    status, body, _ = await api.call(
        "POST", job_path("examples", "example_jobs.native.Average"), data="input.numbers = [1, 2, 3]"
    )
    assert (status, body["result"]) == (200, 2.0)
    status, body, _ = await api.call(
        "POST",
        job_path("examples", "example_jobs.word_count.WordCountSparkSessionJob"),
        data='input.strings = ["x"]',
    )
    assert (status, body["result"]) == (200, {"x": 1})
    status, body, _ = await api.call(
        "POST", job_path("examples", "example_jobs.word_count.WordCountSparkSessionJob")
    )
    assert (status, body["status"]) == (200, "ERROR")
    assert body["result"]["message"] == "Validation failed: config input.strings not found"


@pytest.mark.parametrize(
    ("app", "main"), [("melin", "melin_job:main"), ("melin_single", "melin_single:main")]
)
async def test_melins_main_of_the_session_alone_runs_with_its_templates_names(
    api: Api, app: str, main: str
) -> None:
    status, body, _ = await api.call("POST", job_path(app, main))
    assert (status, body.get("result")) == (200, {"a": 2, "b": 1}), body
