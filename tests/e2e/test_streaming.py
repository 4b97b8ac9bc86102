"""Streaming with real Spark: Structured Streaming jobs killed cleanly in a session context, DStream
jobs in a streaming context, and jars given to a context when it is created.

One server for the module and two contexts (two JVMs): ``streams`` (the default session factory,
created with the example jar as a context jar) and ``dstreams`` (StreamingContextFactory).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support import (
    SPARK_TEST_OVERRIDES,
    Api,
    build_jar,
    processes_mentioning,
    running_server,
    wait_until,
)

pytestmark = [pytest.mark.spark, pytest.mark.asyncio(loop_scope="module")]

STREAMING_FACTORY = "spark.jobserver.context.StreamingContextFactory"
RATE_TO_MEMORY = "example_jobs.streaming:rate_to_memory"


@pytest.fixture(scope="module")
def jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/jvm compiled: SumJob, StreamCountJob and the Twice UDF."""
    return build_jar(tmp_path_factory.mktemp("jar"))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, jar: Path) -> AsyncIterator[Api]:
    work_dir = tmp_path_factory.mktemp("streaming")
    async with running_server(work_dir, SPARK_TEST_OVERRIDES) as api:
        await api.upload("examples")
        # The jar is the session context's own: on its classpath from the start, never uploaded.
        settings = {"spark.context-settings": {"dependent-jar-uris": [f"file://{jar}"]}}
        status, body, _ = await api.call("POST", "/contexts/streams", data=json.dumps(settings))
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context initialized"})
        settings = {"spark.context-settings": {"context-factory": STREAMING_FACTORY}}
        status, body, _ = await api.call(
            "POST", "/contexts/dstreams?streaming.batch_interval=500", data=json.dumps(settings)
        )
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context initialized"})
        yield api


async def run_sync(api: Api, context: str, main_class: str, config: str = "") -> tuple[int, Any]:
    path = f"/jobs?cp=examples&mainClass={main_class}&context={context}&sync=true&timeout=90"
    status, body, _ = await api.call("POST", path, data=config)
    return status, body


async def start_async(api: Api, context: str, main_class: str, config: str = "") -> str:
    status, body, _ = await api.call(
        "POST", f"/jobs?cp=examples&mainClass={main_class}&context={context}", data=config
    )
    assert status == 202, body
    return str(body["jobId"])


async def active_queries(api: Api) -> list[str]:
    status, body = await run_sync(api, "streams", "example_jobs.streaming:active_queries")
    assert status == 200, body
    return list(body["result"])


async def kill(api: Api, job_id: str) -> dict[str, Any]:
    status, answer, _ = await api.call("DELETE", f"/jobs/{job_id}")
    assert (status, answer) == (200, {"status": "KILLED"})
    return await api.wait_job_state(job_id, "KILLED", "ERROR", "FINISHED")


# --- Structured Streaming in a session context -------------------------------------------------


async def test_killing_a_streaming_job_stops_its_query_and_leaves_the_other_jobs_query(api: Api) -> None:
    first = await start_async(api, "streams", RATE_TO_MEMORY, 'stream.name = "first"')
    second = await start_async(api, "streams", RATE_TO_MEMORY, 'stream.name = "second"')
    await api.wait_job_state(first, "RUNNING")
    await api.wait_job_state(second, "RUNNING")

    async def both_streaming() -> bool:
        return await active_queries(api) == ["first", "second"]

    await wait_until(both_streaming, timeout_s=60, what="both queries active")

    report = await kill(api, first)
    assert report["status"] == "KILLED"
    assert report["result"]["message"] == f"Job {first} killed"

    async def only_second_streaming() -> bool:
        return await active_queries(api) == ["second"]

    await wait_until(only_second_streaming, timeout_s=30, what="the killed job's query stopped")
    assert await api.job_state(second) == "RUNNING"

    assert (await kill(api, second))["status"] == "KILLED"

    async def none_streaming() -> bool:
        return await active_queries(api) == []

    await wait_until(none_streaming, timeout_s=30, what="no query left")
    status, info, _ = await api.call("GET", "/contexts/streams")
    assert (status, info["state"]) == (200, "RUNNING")


async def test_a_streaming_job_that_stops_its_query_itself_finishes_with_its_rows(api: Api) -> None:
    status, body = await run_sync(
        api, "streams", RATE_TO_MEMORY, 'stream { name = "limited", rows = 20, rows_per_second = 50 }'
    )
    assert status == 200, body
    assert body["result"]["name"] == "limited"
    assert body["result"]["rows"] >= 20
    assert await active_queries(api) == []


async def test_a_streaming_context_job_does_not_fit_a_session_context(api: Api) -> None:
    status, body = await run_sync(api, "streams", "example_jobs.streaming:queue_word_count")
    assert (status, body) == (400, {"status": "ERROR", "result": "Invalid job type for this context"})
    assert (await api.call("GET", "/contexts/streams"))[1]["state"] == "RUNNING"


async def test_jars_given_at_context_creation_are_on_its_classpath(api: Api) -> None:
    status, body = await run_sync(api, "streams", "example_jobs.native:twice_in_java")
    assert (status, body.get("result")) == (200, [0, 2, 4]), body


async def test_a_context_whose_local_jar_is_missing_does_not_start(api: Api, tmp_path: Path) -> None:
    missing = tmp_path / "missing.jar"
    settings = {"spark.context-settings": {"dependent-jar-uris": [str(missing)]}}
    status, body, _ = await api.call("POST", "/contexts/jarless", data=json.dumps(settings))
    assert (status, body["status"]) == (500, "CONTEXT INIT ERROR"), body
    assert f"dependent jars not found: {missing}" in body["result"]["message"]
    assert (await api.call("GET", "/contexts/jarless"))[1]["state"] == "ERROR"


# --- DStreams in a streaming context -------------------------------------------------------------


async def test_streaming_context_hands_jobs_a_streaming_context(api: Api) -> None:
    status, body = await run_sync(
        api, "dstreams", "example_jobs.streaming:queue_word_count", 'input.batches = [["a", "b", "a"], ["b"]]'
    )
    assert (status, body.get("result")) == (200, {"a": 2, "b": 2}), body


async def test_jvm_job_gets_a_java_streaming_context(api: Api, jar: Path) -> None:
    await api.upload("jvm-examples", jar, "application/java-archive")
    path = "/jobs?appName=jvm-examples&classPath=example.StreamCountJob&context=dstreams&sync=true&timeout=90"
    status, body, _ = await api.call("POST", path)
    assert (status, body.get("result")) == (200, {"batches": 3, "elements": 9}), body


async def test_killing_a_dstream_job_stops_its_streaming_context_but_not_the_context(api: Api) -> None:
    job_id = await start_async(api, "dstreams", "example_jobs.streaming:queue_forever")
    await api.wait_job_state(job_id, "RUNNING")

    async def streaming(expected: bool) -> bool:
        status, body = await run_sync(api, "dstreams", "example_jobs.streaming:streaming_state")
        assert status == 200, body
        return bool(body["result"] == {"active": expected})

    await wait_until(lambda: streaming(True), timeout_s=60, what="the DStream job streaming")
    assert (await kill(api, job_id))["status"] == "KILLED"
    await wait_until(lambda: streaming(False), timeout_s=30, what="its StreamingContext stopped")

    # The next job gets a new StreamingContext.
    status, body = await run_sync(
        api, "dstreams", "example_jobs.streaming:queue_word_count", 'input.batches = [["c"]]'
    )
    assert (status, body.get("result")) == (200, {"c": 1}), body
    assert (await api.call("GET", "/contexts/dstreams"))[1]["state"] == "RUNNING"


async def test_a_failing_job_stops_a_streaming_context_by_default(api: Api) -> None:
    streaming_job = await start_async(api, "dstreams", "example_jobs.streaming:queue_forever")
    await api.wait_job_state(streaming_job, "RUNNING")
    # A SparkSession job does not fit a streaming context; as any failure, it stops the context
    # (stop-context-on-job-error is true for streaming contexts unless set), and the running
    # DStream job does not hold the stop up (its StreamingContext stops gracefully first).
    status, body = await run_sync(api, "dstreams", "example_jobs.streaming:active_queries")
    assert (status, body) == (400, {"status": "ERROR", "result": "Invalid job type for this context"})
    context = await api.wait_context_state("dstreams", "FINISHED", timeout_s=60)
    assert (await api.wait_job_state(streaming_job, "FINISHED", "ERROR"))["status"] in ("FINISHED", "ERROR")

    async def driver_gone() -> bool:
        return not processes_mentioning(context["id"])

    await wait_until(driver_gone, timeout_s=30, what="the streaming context's driver gone")
