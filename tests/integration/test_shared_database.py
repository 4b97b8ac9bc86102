"""Two servers on one PostgreSQL database see the same binaries and job history, and deliver a
callback left pending once."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import quote

from tests.support import (
    FAKE_SPARK_HOMES,
    callback_listener,
    free_port,
    running_server,
    stored_callbacks,
    wait_until,
)


async def test_two_servers_share_binaries_and_job_history(tmp_path: Path, fresh_postgres_url: str) -> None:
    light = {"spark.home": str(FAKE_SPARK_HOMES / "light"), "spark.jobserver.store.url": fresh_postgres_url}
    async with running_server(tmp_path / "a", {**light, "spark.jobserver.server-id": "server-a"}) as first:
        await first.upload("examples")
        assert (await first.call("POST", "/contexts/on-a"))[0] == 200
        _, job, _ = await first.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=on-a&sync=true",
            data='{"input": {"from": "a"}}',
        )
        async with running_server(
            tmp_path / "b", {**light, "spark.jobserver.server-id": "server-b"}
        ) as second:
            # The second server's start-up reconciliation leaves the first one's context alone.
            assert (await first.call("GET", "/contexts/on-a"))[1]["state"] == "RUNNING"
            binaries = (await second.call("GET", "/binaries"))[1]
            assert binaries["examples"]["binary-type"] == "Wheel"
            status, report, _ = await second.call("GET", f"/jobs/{job['jobId']}")
            assert (status, report["status"], report["result"]) == (200, "FINISHED", {"from": "a"})

            # A job on the second server runs the bytes the first one received (from the database).
            assert (await second.call("POST", "/contexts/on-b"))[0] == 200
            status, answer, _ = await second.call(
                "POST",
                "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=on-b&sync=true",
                data='{"input": {"from": "b"}}',
            )
            assert (status, answer["result"]) == (200, {"from": "b"})
            listed = {entry["jobId"] for entry in (await first.call("GET", "/jobs"))[1]}
            assert {job["jobId"], answer["jobId"]} <= listed


async def test_two_servers_deliver_a_callback_left_pending_once(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    port = free_port()  # nothing listens there while the first server runs
    url = f"http://127.0.0.1:{port}/done"
    shared = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.store.url": fresh_postgres_url,
        "spark.jobserver.callback.allowed-hosts": ["127.0.0.1"],
        "spark.jobserver.callback.attempts": 1000,
        "spark.jobserver.callback.retry-interval": "100ms",
    }
    async with running_server(tmp_path / "x", {**shared, "spark.jobserver.server-id": "server-x"}) as first:
        await first.upload("examples")
        _, job, _ = await first.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&sync=true"
            f"&callbackUrl={quote(url, safe='')}",
            data='{"input": {"once": true}}',
        )

        async def attempted() -> bool:
            return any(pending.attempts >= 1 for pending in await stored_callbacks(first.settings, tmp_path))

        await wait_until(attempted, timeout_s=15, what="a failed attempt stored")

    async with callback_listener(port=port) as (receiver, _), contextlib.AsyncExitStack() as servers:
        # Both start at once, and both look for callbacks nobody delivers.
        started = await asyncio.gather(
            *(
                servers.enter_async_context(
                    running_server(tmp_path / name, {**shared, "spark.jobserver.server-id": name})
                )
                for name in ("server-a", "server-b")
            )
        )

        async def delivered() -> bool:
            return bool(receiver.received) and not await stored_callbacks(started[0].settings, tmp_path)

        await wait_until(delivered, timeout_s=15, what="the callback delivered and removed")
        assert receiver.received == [{"jobId": job["jobId"], "result": {"once": True}}]
        assert receiver.attempts == 1
