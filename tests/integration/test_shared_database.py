"""Two servers on one PostgreSQL database see the same binaries and job history."""

from __future__ import annotations

from pathlib import Path

from tests.support import FAKE_SPARK_HOMES, running_server


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
