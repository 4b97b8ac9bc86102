"""spark-jobserver's JVM job API with real Spark: Java and Scala jobs written as its users wrote
them, compiled against pyspark's jars and the adapter that ``make install`` builds, uploaded and
run in one persistent session context (one JVM for the module); and the jars a job brings staying
loadable for the context's later jobs.
"""

from __future__ import annotations

import subprocess
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from driver.jvm_api import ADAPTER_JARS, source_jars_dir
from tests.support import REPO, SPARK_TEST_OVERRIDES, Api, running_server

pytestmark = [pytest.mark.spark, pytest.mark.asyncio(loop_scope="module")]

CONTEXT = "jvm-api"
SOURCES = REPO / "examples" / "jvm_api"
JAR = "application/java-archive"


def compile_classpath() -> list[Path]:
    import pyspark

    adapter = [source_jars_dir() / name for name in ADAPTER_JARS]
    missing = [str(jar) for jar in adapter if not jar.is_file()]
    assert not missing, f"{missing} not built: install libtypesafe-config-java and run make install"
    return [*sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar")), *adapter]


def javac(classes: Path, classpath: list[Path], sources: list[Path]) -> None:
    command = ["javac", "-nowarn", "-d", str(classes), "-cp", ":".join(map(str, [classes, *classpath]))]
    subprocess.run([*command, *map(str, sources)], check=True)


def scalac(classes: Path, classpath: list[Path], sources: list[Path]) -> None:
    """The Scala compiler that pyspark's jars hold (Spark's own Scala 2.13)."""
    compiler = [
        jar
        for jar in classpath
        if jar.name.startswith(("scala-compiler-", "scala-library-", "scala-reflect-"))
    ]
    command = ["java", "-cp", ":".join(map(str, compiler)), "scala.tools.nsc.Main", "-nowarn"]
    command += ["-d", str(classes), "-classpath", ":".join(map(str, [classes, *classpath]))]
    subprocess.run([*command, *map(str, sources)], check=True)


def pack(classes: Path, package: str, jar: Path) -> Path:
    with zipfile.ZipFile(jar, "w") as archive:
        for compiled in sorted((classes / package).rglob("*.class")):
            archive.write(compiled, str(compiled.relative_to(classes)))
    return jar


@pytest.fixture(scope="module")
def jars(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """examples/jvm_api compiled: the API examples (Java and Scala), the greeting library, a job
    that calls the library but leaves it out of its jar, and a second version of the library."""
    folder = tmp_path_factory.mktemp("jvm-api-jars")
    classpath = compile_classpath()
    classes = folder / "classes"
    javac(classes, classpath, sorted(SOURCES.rglob("*.java")))
    scalac(classes, classpath, sorted(SOURCES.rglob("*.scala")))
    second = folder / "second"
    second.mkdir()
    greeting = (SOURCES / "greeting" / "lib" / "Greeting.java").read_text(encoding="utf-8")
    (second / "Greeting.java").write_text(greeting.replace('"Hello, "', '"Hi, "'), encoding="utf-8")
    second_classes = folder / "second-classes"
    javac(
        second_classes,
        classpath,
        [second / "Greeting.java", SOURCES / "greeting" / "lib" / "GreetingJob.java"],
    )
    return {
        "api": pack(classes, "example", folder / "api-examples.jar"),
        "lib": pack(classes, "greeting/lib", folder / "greeting-lib.jar"),
        "app": pack(classes, "greeting/app", folder / "greeting-app.jar"),
        "lib2": pack(second_classes, "greeting/lib", folder / "greeting-lib-2.jar"),
    }


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, jars: dict[str, Path]) -> AsyncIterator[Api]:
    async with running_server(tmp_path_factory.mktemp("jvm-api"), SPARK_TEST_OVERRIDES) as api:
        await api.upload("api-examples", jars["api"], JAR)
        status, body, _ = await api.call("POST", f"/contexts/{CONTEXT}")
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context initialized"})
        yield api


def job_path(main_class: str, app: str = "api-examples") -> str:
    return f"/jobs?appName={app}&classPath={main_class}&context={CONTEXT}&sync=true&timeout=60"


async def test_jsession_job_runs_with_its_config_and_reads_finished(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", job_path("example.api.WordCountJob"), data='input.strings = ["a", "b", "a"]'
    )
    assert (status, body.get("result")) == (200, {"a": 2, "b": 1}), body
    report = (await api.call("GET", f"/jobs/{body['jobId']}"))[1]
    assert (report["status"], report["result"]) == ("FINISHED", {"a": 2, "b": 1})


async def test_jsession_job_verify_problem_answers_validation_failed(api: Api) -> None:
    status, body, _ = await api.call("POST", job_path("example.api.WordCountJob"), data="input.other = 1")
    assert status == 400, body
    assert body["status"] == "VALIDATION FAILED"
    assert body["result"]["message"] == "Validation failed: config input.strings not found"
    assert body["result"]["errorClass"] == "spark.jobserver.japi.SingleJavaValidationException"
    assert "WordCountJob.verify" in body["result"]["stack"]


async def test_job_environment_and_typesafe_config_reach_the_job(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", job_path("example.api.EnvironmentJob"), data='input { rows = 21, label = "twice" }'
    )
    assert status == 200, body
    assert body["result"] == {
        "jobId": body["jobId"],
        "context": CONTEXT,
        "rows": 21,
        "label": "twice",
        "labelSet": True,
        "rowsTwice": 42,
    }
    # What verify returned (here the config with a fallback of its own) is what run gets.
    body = (await api.call("POST", job_path("example.api.EnvironmentJob"), data="input.rows = 1"))[1]
    assert (body["result"]["label"], body["result"]["rowsTwice"]) == ("none", 2), body


async def test_jspark_job_does_not_fit_a_session_context(api: Api) -> None:
    status, body, _ = await api.call("POST", job_path("example.api.ParallelSumJob"))
    assert (status, body) == (400, {"status": "ERROR", "result": "Invalid job type for this context"})


async def test_scala_session_job_validates_and_runs(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", job_path("example.api.WordCountScalaJob"), data='input.strings = ["x", "y", "x"]'
    )
    assert (status, body.get("result")) == (200, {"x": 2, "y": 1}), body
    status, body, _ = await api.call("POST", job_path("example.api.WordCountScalaJob"))
    assert status == 400, body
    assert body["status"] == "VALIDATION FAILED"
    assert body["result"]["message"] == "Validation failed: No input.strings param"


async def test_jar_a_job_loaded_serves_later_jobs_and_versions_do_not_mix(
    api: Api, jars: dict[str, Path]
) -> None:
    await api.upload("greeting-lib", jars["lib"], JAR)
    await api.upload("greeting-app", jars["app"], JAR)
    who = 'input.who = "you"'
    body = (await api.call("POST", job_path("greeting.lib.GreetingJob", "greeting-lib"), data=who))[1]
    assert body.get("result") == "Hello, you", body
    # greeting-app's jar leaves the library out, and its cp does not name it: the context has it.
    body = (await api.call("POST", job_path("greeting.app.GreeterJob", "greeting-app"), data=who))[1]
    assert body.get("result") == "Hello, you", body

    # Another version of the library under the same name: the job that names it runs it ...
    await api.upload("greeting-lib", jars["lib2"], JAR)
    body = (await api.call("POST", job_path("greeting.lib.GreetingJob", "greeting-lib"), data=who))[1]
    assert body.get("result") == "Hi, you", body
    # ... and the context's jobs that name no version keep the one loaded first.
    body = (await api.call("POST", job_path("greeting.app.GreeterJob", "greeting-app"), data=who))[1]
    assert body.get("result") == "Hello, you", body
