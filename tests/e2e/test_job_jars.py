"""Jars for a context and for a job, and single-module Python packages, with real spark-submit and
local Spark (one JVM for the module: the context ``jarred``).

``jarred`` names an uploaded jar among its own jars, and mounts a folder of the test under
``viewfs://jobserver/jars`` (Hadoop's mount-table file system over ``file:``): no HDFS runs here,
so the Hadoop ``FileSystem`` path that ``hdfs:`` URIs take is exercised through ``viewfs:``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support import REPO, SPARK_TEST_OVERRIDES, Api, build_jar, free_port, running_server

pytestmark = [pytest.mark.spark, pytest.mark.asyncio(loop_scope="module")]

CONTEXT = "jarred"
WORD_LENGTHS = REPO / "examples" / "python" / "word_lengths.py"

# JVM job classes made for these tests: each Answer answers its package's name; uses.Helper calls
# into another jar, helper.jar.
RUN = "public static Object run(org.apache.spark.sql.SparkSession spark, String configJson)"
ANSWER = 'package {0}; public class Answer {{ {1} {{ return "{0}"; }} }}'
JAVA_SOURCES = {
    **{f"{name}/Answer.java": ANSWER.format(name, RUN) for name in ("first", "second", "third")},
    "helper/Greeting.java": (
        'package helper; public class Greeting { public static String text() { return "hi"; } }'
    ),
    "uses/Helper.java": (
        f'package uses; public class Helper {{ {RUN} {{ return helper.Greeting.text() + "!"; }} }}'
    ),
}


@dataclass(frozen=True)
class Jars:
    """Jars compiled with javac for the module: one per package of JAVA_SOURCES, and the examples'."""

    folder: Path
    examples: Path

    def of(self, package: str) -> Path:
        return self.folder / f"{package}.jar"


@pytest.fixture(scope="module")
def jars(tmp_path_factory: pytest.TempPathFactory) -> Jars:
    import pyspark

    folder = tmp_path_factory.mktemp("jars")
    sources = folder / "src"
    for name, text in JAVA_SOURCES.items():
        (sources / name).parent.mkdir(parents=True, exist_ok=True)
        (sources / name).write_text(text)
    classes = folder / "classes"
    classpath = ":".join(str(jar) for jar in sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar")))
    subprocess.run(
        ["javac", "-d", str(classes), "-cp", classpath, *map(str, sorted(sources.rglob("*.java")))],
        check=True,
    )
    for package in {name.split("/")[0] for name in JAVA_SOURCES}:
        with zipfile.ZipFile(folder / f"{package}.jar", "w") as archive:
            for compiled in sorted((classes / package).glob("*.class")):
                archive.write(compiled, str(compiled.relative_to(classes)))
    return Jars(folder, build_jar(tmp_path_factory.mktemp("examples-jar")))


@pytest.fixture(scope="module")
def mounted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder ``viewfs://jobserver/jars`` shows."""
    return tmp_path_factory.mktemp("mounted")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, jars: Jars, mounted: Path) -> AsyncIterator[Api]:
    async with running_server(tmp_path_factory.mktemp("job-jars"), SPARK_TEST_OVERRIDES) as api:
        await api.upload("examples")
        await api.upload("udfs", jars.examples, "application/java-archive")
        settings = {
            "spark.context-settings": {
                "dependent-jar-uris": ["udfs"],
                "hadoop": {"fs.viewfs.mounttable.jobserver.link./jars": mounted.as_uri()},
            }
        }
        status, body, _ = await api.call("POST", f"/contexts/{CONTEXT}", data=json.dumps(settings))
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context initialized"})
        yield api


@dataclass(frozen=True)
class Served:
    folder: Path
    url: str


@pytest_asyncio.fixture(loop_scope="module")
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """A folder of the test over HTTP (ETag, Last-Modified and 304, as aiohttp's static files do)."""
    app = web.Application()
    app.router.add_static("/files", tmp_path)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Served(tmp_path, str(server.make_url("/files")))
    finally:
        await server.close()


async def run_jvm_job(api: Api, cp: str, main_class: str, body: str = "") -> tuple[int, Any]:
    path = f"/jobs?cp={cp}&mainClass={main_class}&context={CONTEXT}&sync=true&timeout=60"
    status, answer, _ = await api.call("POST", path, data=body)
    return status, answer


async def test_an_uploaded_jar_named_among_a_contexts_jars_is_on_its_classpath(api: Api) -> None:
    path = f"/jobs?cp=examples&mainClass=example_jobs.native:twice_in_java&context={CONTEXT}&sync=true"
    status, body, _ = await api.call("POST", path + "&timeout=60")
    assert (status, body.get("result")) == (200, [0, 2, 4]), body


async def test_each_file_uri_package_runs_its_own_code(api: Api, jars: Jars, tmp_path: Path) -> None:
    # Before, every file:// package was cached under an empty hash: the second ran the first's code.
    same_path = tmp_path / "dependency.jar"
    same_path.write_bytes(jars.of("first").read_bytes())
    status, body = await run_jvm_job(api, same_path.as_uri(), "first.Answer")
    assert (status, body["result"]) == (200, "first"), body
    same_path.write_bytes(jars.of("second").read_bytes())  # changed where it was
    status, body = await run_jvm_job(api, same_path.as_uri(), "second.Answer")
    assert (status, body["result"]) == (200, "second"), body
    status, body = await run_jvm_job(api, jars.of("third").as_uri(), "third.Answer")
    assert (status, body["result"]) == (200, "third"), body
    status, body = await run_jvm_job(api, f"local://{jars.of('first')}", "first.Answer")
    assert (status, body["result"]) == (200, "first"), body
    # docs/jobs.md: the examples' jar straight from a path on the driver's host
    status, body = await run_jvm_job(api, jars.examples.as_uri(), "example.SumJob", "input.x = 1")
    assert (status, body["result"]) == (200, {"sum": 45, "configMentionsInput": True}), body


async def test_a_jobs_dependent_jar_uris_come_over_http_with_its_binary(
    api: Api, jars: Jars, served: Served
) -> None:
    await api.upload("uses-helper", jars.of("uses"), "application/java-archive")
    (served.folder / "helper.jar").write_bytes(jars.of("helper").read_bytes())
    body = f'dependent-jar-uris = ["{served.url}/helper.jar"]'
    path = f"/jobs?appName=uses-helper&classPath=uses.Helper&context={CONTEXT}&sync=true&timeout=60"
    for _ in range(2):  # the second time the server answers 304 Not Modified
        status, answer, _ = await api.call("POST", path, data=body)
        assert (status, answer.get("result")) == (200, "hi!"), answer


async def test_a_changed_file_behind_an_http_uri_is_fetched_again(
    api: Api, jars: Jars, served: Served
) -> None:
    (served.folder / "answer.jar").write_bytes(jars.of("first").read_bytes())
    assert (await run_jvm_job(api, f"{served.url}/answer.jar", "first.Answer"))[0] == 200
    (served.folder / "answer.jar").write_bytes(jars.of("second").read_bytes())
    status, body = await run_jvm_job(api, f"{served.url}/answer.jar", "second.Answer")
    assert (status, body["result"]) == (200, "second"), body


async def test_uris_the_driver_cannot_load_answer_the_contracts_loading_errors(
    api: Api, served: Served
) -> None:
    status, body = await run_jvm_job(api, f"{served.url}/nowhere.jar", "x.Job")
    assert (status, body["status"]) == (400, "JOB LOADING FAILED"), body
    assert "HTTP 404" in body["result"]["message"]
    status, body = await run_jvm_job(api, f"http://127.0.0.1:{free_port()}/x.jar", "x.Job")
    assert (status, body["status"]) == (400, "JOB LOADING FAILED"), body
    status, body = await run_jvm_job(api, (served.folder / "missing.jar").as_uri(), "x.Job")
    assert (status, body["status"]) == (400, "JOB LOADING FAILED"), body
    assert "no such file on the driver's host" in body["result"]["message"]
    for malformed in ("hdfs:///test/does/not/exist", "nofs://somewhere/x.jar"):
        status, body = await run_jvm_job(api, malformed, "x.Job")
        assert (status, body["status"]) == (400, "JOB LOADING FAILED: Malformed URL"), body
        assert body["result"]["errorClass"] == "java.net.MalformedURLException"


async def test_hadoop_file_system_uris_are_fetched_through_hadoop(
    api: Api, jars: Jars, mounted: Path
) -> None:
    (mounted / "answer.jar").write_bytes(jars.of("third").read_bytes())
    status, body = await run_jvm_job(api, "viewfs://jobserver/jars/answer.jar", "third.Answer")
    assert (status, body["result"]) == (200, "third"), body
    (mounted / "answer.jar").write_bytes(jars.of("second").read_bytes())
    status, body = await run_jvm_job(api, "viewfs://jobserver/jars/answer.jar", "second.Answer")
    assert (status, body["result"]) == (200, "second"), body
    status, body = await run_jvm_job(api, "viewfs://jobserver/jars/missing.jar", "x.Job")
    assert (status, body["status"]) == (400, "JOB LOADING FAILED"), body
    assert "FileNotFoundException" in body["result"]["message"]
    (mounted / "folder.jar").mkdir()
    (mounted / "folder.jar" / "inside.jar").write_bytes(jars.of("third").read_bytes())
    status, body = await run_jvm_job(api, "viewfs://jobserver/jars/folder.jar", "third.Answer")
    assert (status, body["status"]) == (400, "JOB LOADING FAILED"), body
    expected = "cannot load viewfs://jobserver/jars/folder.jar: a directory, not a file"
    assert body["result"]["message"] == expected, body


async def test_a_single_python_module_is_a_package_for_the_driver_and_the_executors(api: Api) -> None:
    await api.upload("word_lengths", WORD_LENGTHS, "text/x-python")
    assert (await api.call("GET", "/binaries/word_lengths"))[1]["binary-type"] == "Python"
    path = f"/jobs?cp=word_lengths&mainClass=word_lengths:main&context={CONTEXT}&sync=true&timeout=60"
    status, body, _ = await api.call("POST", path, data='input.strings = ["a", "bbb"]')
    assert (status, body.get("result")) == (200, {"a": 1, "bbb": 3}), body

    changed = "def main(spark, config):\n    return 'version 2'\n"
    headers = {"Content-Type": "text/x-python"}
    assert (await api.call("POST", "/binaries/word_lengths", data=changed, headers=headers))[0] == 201
    status, body, _ = await api.call("POST", path)
    assert (status, body.get("result")) == (200, "version 2"), body


async def test_a_python_module_may_come_from_a_uri_too(api: Api, tmp_path: Path) -> None:
    module = tmp_path / "from_uri.py"
    module.write_text("def main(spark, config):\n    return spark.range(4).count()\n")
    status, body = await run_jvm_job(api, module.as_uri(), "from_uri:main")
    assert (status, body["result"]) == (200, 4), body


async def test_a_package_slow_to_download_holds_up_no_other_job(api: Api) -> None:
    requested, release = asyncio.Event(), asyncio.Event()

    async def held_module(request: web.Request) -> web.Response:
        requested.set()
        await release.wait()  # the download hangs until the other job is done
        return web.Response(body=b"def main(spark, config):\n    return 'downloaded'\n")

    app = web.Application()
    app.router.add_get("/held_module.py", held_module)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        path = f"/jobs?cp={server.make_url('/held_module.py')}&mainClass=held_module:main&context={CONTEXT}"
        status, slow, _ = await api.call("POST", path)
        assert status == 202, slow
        async with asyncio.timeout(60):
            await requested.wait()
        # Before, the download held the lock every job imports under: this job waited for it.
        echo = f"/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context={CONTEXT}&sync=true"
        status, body, _ = await api.call("POST", echo + "&timeout=20", data='{"input": "not held up"}')
        assert (status, body.get("result")) == (200, "not held up"), body
        assert (await api.call("GET", f"/jobs/{slow['jobId']}"))[1]["status"] in ("STARTED", "RUNNING")
    finally:
        release.set()
    try:
        ended = await api.wait_job_state(slow["jobId"], "FINISHED", "ERROR")
        assert ended["result"] == "downloaded", ended
    finally:
        await server.close()


async def test_the_context_still_runs_after_all_of_it(api: Api) -> None:
    assert (await api.call("GET", f"/contexts/{CONTEXT}"))[1]["state"] == "RUNNING"
