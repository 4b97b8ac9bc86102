"""What a job printed or logged (GET /jobs/<id>/logs, followed too), its progress (GET /jobs/<id>,
GET /jobs/<id>/events) and a context's driver log (GET /contexts/<name>/logs), with the light
stand-in driver: the real driver code, no JVM."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.support import FAKE_SPARK_HOMES, Api, running_server, wait_until

CHATTY = b"""
import logging
import sys
import time

log = logging.getLogger("chatty")


def main(spark, config):
    tag = config.get("tag")
    for index in range(int(config.get("lines"))):
        print(f"{tag} out {index}")
        time.sleep(float(config.get("pause")))
    print(f"{tag} err", file=sys.stderr)
    log.warning("%s logged", tag)
    return tag
"""

pytestmark = pytest.mark.asyncio(loop_scope="module")

SETTINGS = {
    "spark.home": str(FAKE_SPARK_HOMES / "light"),
    "spark.jobserver.job-logs.max-lines": 30,
    "spark.jobserver.job-logs.batch-interval": "50ms",
    "spark.jobserver.job-progress.interval": "200ms",
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running_server(tmp_path_factory.mktemp("job-output"), SETTINGS) as api:
        status, body, _ = await api.call(
            "POST", "/binaries/chatty", data=CHATTY, headers={"Content-Type": "text/x-python"}
        )
        assert status == 201, body
        assert (await api.call("POST", "/contexts/talk"))[0] == 200
        yield api


async def submit(api: Api, tag: str, lines: int, pause_s: float = 0.0, *, sync: bool = False) -> str:
    config = json.dumps({"tag": tag, "lines": lines, "pause": pause_s})
    query = "cp=chatty&mainClass=chatty:main&context=talk" + ("&sync=true" if sync else "")
    status, body, _ = await api.call(
        "POST", f"/jobs?{query}", data=config, headers={"Content-Type": "application/json"}
    )
    assert status in (200, 202), body
    return str(body["jobId"])


async def events(api: Api, path: str) -> list[tuple[str, str]]:
    """Every (event, data) of a Server-Sent Events stream, read until the server ends it."""
    received: list[tuple[str, str]] = []
    async with api.session.get(path) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        event = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                received.append((event, line.removeprefix("data: ")))
    return received


async def test_each_job_gets_only_what_its_own_thread_printed_and_logged(api: Api) -> None:
    first, second = await submit(api, "first", 6, 0.02), await submit(api, "second", 6, 0.02)
    for job_id in (first, second):
        await api.wait_job_state(job_id, "FINISHED")

    for job_id, tag in ((first, "first"), (second, "second")):
        status, page, _ = await api.call("GET", f"/jobs/{job_id}/logs")
        assert status == 200
        assert page["from"] == 0 and page["total"] == 8
        assert page["log"][:7] == [*(f"{tag} out {index}" for index in range(6)), f"{tag} err"]
        assert page["log"][7].endswith(f"WARNING chatty: {tag} logged")

    status, page, _ = await api.call("GET", f"/jobs/{first}/logs?from=2&size=3")
    lines = ["first out 2", "first out 3", "first out 4"]
    assert (status, page) == (200, {"from": 2, "total": 8, "log": lines})
    status, page, _ = await api.call("GET", f"/jobs/{first}/logs?size=2")  # the last lines
    assert (page["from"], page["total"], page["log"][0]) == (6, 8, "first err")


async def test_a_quick_job_has_its_lines_but_no_progress_and_an_unknown_job_no_log(api: Api) -> None:
    job_id = await submit(api, "quiet", 0, sync=True)
    status, report, _ = await api.call("GET", f"/jobs/{job_id}")
    assert status == 200 and "progress" not in report
    _, page, _ = await api.call("GET", f"/jobs/{job_id}/logs")
    assert page["log"][0] == "quiet err" and page["total"] == 2  # its stderr and logging lines
    assert (await api.call("GET", "/jobs/no-such-job/logs"))[0] == 404


async def test_a_chatty_job_is_cut_after_max_lines_with_a_marker(api: Api) -> None:
    job_id = await submit(api, "chatty", 100)
    await api.wait_job_state(job_id, "FINISHED")
    _, page, _ = await api.call("GET", f"/jobs/{job_id}/logs?from=0&size=1000")
    assert page["total"] == 31
    assert page["log"][29] == "chatty out 29"
    assert page["log"][30] == (
        "[jobserver] log truncated after 30 lines (spark.jobserver.job-logs.max-lines)"
    )


async def test_following_a_jobs_log_streams_its_lines_until_it_ends(api: Api) -> None:
    job_id = await submit(api, "follow", 5, 0.1)
    received = await events(api, f"/jobs/{job_id}/logs?follow=true")
    lines = [data for event, data in received if event == "log"]
    assert lines[:6] == [*(f"follow out {index}" for index in range(5)), "follow err"]
    assert received[-1] == ("end", json.dumps({"jobId": job_id, "status": "FINISHED"}, separators=(",", ":")))
    # A follower that comes after the end gets the lines from where it asks, then the end.
    received = await events(api, f"/jobs/{job_id}/logs?follow=true&from=5")
    assert next(data for event, data in received if event == "log") == "follow err"


async def test_a_running_job_shows_its_progress_and_streams_its_events(api: Api) -> None:
    job_id = await submit(api, "slow", 20, 0.1)

    async def with_progress() -> dict[str, Any] | None:
        _, report, _ = await api.call("GET", f"/jobs/{job_id}")
        return report.get("progress")

    progress = await wait_until(with_progress, timeout_s=30, what="progress in the job report")
    assert progress["jobs"] == {"total": 1, "active": 1, "completed": 0, "failed": 0}
    assert progress["stages"] == {"total": 2, "active": 1, "completed": 1, "failed": 0}
    assert progress["tasks"] == {"total": 8, "active": 2, "completed": 5, "failed": 0}

    received = await events(api, f"/jobs/{job_id}/events")
    kinds = [event for event, _ in received]
    assert kinds[0] == "state" and json.loads(received[0][1])["status"] == "RUNNING"
    assert "progress" in kinds
    progress_event = json.loads(received[kinds.index("progress")][1])
    assert progress_event["jobId"] == job_id and progress_event["progress"]["tasks"]["total"] == 8
    assert kinds[-1] == "state" and json.loads(received[-1][1])["status"] == "FINISHED"
    _, report, _ = await api.call("GET", f"/jobs/{job_id}")
    assert "progress" not in report  # it ended


async def test_a_contexts_driver_log_is_paged_and_kept_after_it_ended(api: Api) -> None:
    status, page, _ = await api.call("GET", "/contexts/talk/logs?from=0&size=1000")
    assert status == 200 and page["from"] == 0 and page["total"] >= 1
    assert any("driver" in line for line in page["log"])
    status, tail, _ = await api.call("GET", "/contexts/talk/logs?size=1")
    assert (tail["from"], tail["total"], len(tail["log"])) == (tail["total"] - 1, tail["total"], 1)
    assert (await api.call("GET", "/contexts/nothing-here/logs"))[0] == 404

    assert (await api.call("POST", "/contexts/brief"))[0] == 200
    assert (await api.call("DELETE", "/contexts/brief"))[0] == 200
    status, page, _ = await api.call("GET", "/contexts/brief/logs")
    assert status == 200 and page["total"] >= 1
