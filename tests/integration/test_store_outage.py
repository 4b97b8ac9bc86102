"""The metadata store going away and coming back, as HTTP clients and drivers see it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.pg import PostgresServer
from tests.support import FAKE_SPARK_HOMES, running_server, wait_until


async def test_postgres_outage_answers_503_and_loses_no_job(
    tmp_path: Path, private_postgres_server: PostgresServer
) -> None:
    url = private_postgres_server.create_database() + "?pool_min_size=1&pool_max_size=4&pool_timeout=2"
    overrides = {"spark.home": str(FAKE_SPARK_HOMES / "light"), "spark.jobserver.store.url": url}
    async with running_server(tmp_path, overrides) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/steady"))[0] == 200
        _, job, _ = await api.call(
            "POST",
            "/jobs?appName=examples&classPath=example_jobs.sleep_job.PythonSleepJob&context=steady",
            data="sleep.seconds = 3",
        )
        await api.wait_job_state(job["jobId"], "RUNNING")
        # A sync job that finishes while the database is down is answered all the same.
        waiting = asyncio.create_task(
            api.call(
                "POST",
                "/jobs?appName=examples&classPath=example_jobs.sleep_job.PythonSleepJob"
                "&context=steady&sync=true&timeout=60",
                data="sleep.seconds = 2.5",
            )
        )

        async def both_running() -> bool:
            _, running, _ = await api.call("GET", "/jobs?status=RUNNING")
            return len(running) == 2

        await wait_until(both_running, what="the sync job running")

        private_postgres_server.shut_down("fast")
        status, body, _ = await api.call("GET", "/jobs")
        assert status == 503
        assert body["status"] == "ERROR"
        assert body["result"].startswith("metadata store unavailable")
        status, body, _ = await api.call("POST", "/jobs?appName=examples&classPath=x&context=steady")
        assert status == 503
        assert (await api.call("GET", "/healthz"))[0] == 200  # the server itself stays up

        status, answered, _ = await asyncio.wait_for(waiting, 60)
        assert (status, answered["result"]) == (200, 2.5)
        sync_id = answered["jobId"]
        # Until it is stored, the server answers for it from memory, and it cannot be killed.
        status, answered_report, _ = await api.call("GET", f"/jobs/{sync_id}")
        assert (status, answered_report["status"], answered_report["result"]) == (200, "FINISHED", 2.5)
        assert (await api.call("DELETE", f"/jobs/{sync_id}"))[0] == 404

        # The job finishes while the database is down; its result must not be lost.
        private_postgres_server.start()

        async def finished() -> dict | None:
            status, report, _ = await api.call("GET", f"/jobs/{job['jobId']}")
            return report if status == 200 and report["status"] == "FINISHED" else None

        report = await wait_until(
            finished, timeout_s=90, interval_s=0.5, what="job recorded after the outage"
        )
        assert report["result"] == 3
        status, stored, _ = await api.call("GET", f"/jobs/{sync_id}")
        assert (status, stored["status"], stored["result"]) == (200, "FINISHED", 2.5)
        assert stored["duration"] == answered_report["duration"]  # what it was told is what is kept
        _, finished, _ = await api.call("GET", "/jobs?status=FINISHED")
        assert {entry["jobId"] for entry in finished} == {job["jobId"], sync_id}


async def test_retention_deletes_finished_jobs_and_contexts(tmp_path: Path) -> None:
    overrides = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.dao-cleanup-after": "1s",
        "spark.jobserver.dao-cleanup-interval": "500ms",
    }
    async with running_server(tmp_path, overrides) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/brief"))[0] == 200
        _, job, _ = await api.call(
            "POST", "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=brief&sync=true"
        )
        assert (await api.call("GET", f"/jobs/{job['jobId']}"))[0] == 200
        assert (await api.call("DELETE", "/contexts/brief"))[0] == 200

        async def forgotten() -> bool:
            job_status = (await api.call("GET", f"/jobs/{job['jobId']}"))[0]
            context_status = (await api.call("GET", "/contexts/brief"))[0]
            return job_status == 404 and context_status == 404

        await wait_until(forgotten, timeout_s=15, what="finished job and context deleted")
        assert (await api.call("GET", "/binaries/examples"))[0] == 200  # binaries are kept


async def test_a_job_sent_before_its_insert_failed_is_killed_and_frees_its_slot(tmp_path: Path) -> None:
    overrides = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.max-jobs-per-context": 1,
    }
    async with running_server(tmp_path, overrides) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/locked"))[0] == 200
        (database,) = tmp_path.rglob("*.db")
        (driver_log,) = tmp_path.rglob("logs/*.log")
        # Another process holds the write lock past the busy timeout: the insert fails after the
        # job went to the driver (a job that can start at once is sent before it is stored).
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            status, body, _ = await api.call(
                "POST",
                "/jobs?appName=examples&classPath=example_jobs.sleep_job.PythonSleepJob&context=locked",
                data="sleep.seconds = 60",
            )
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert status == 503
        assert body["result"].startswith("metadata store unavailable")

        async def killed_in_driver() -> bool:
            return "ended: job_killed" in driver_log.read_text()

        await wait_until(killed_in_driver, what="the driver killing the job it was sent")
        # Its slot is free again (one per context here), and it was never stored.
        status, body, _ = await api.call(
            "POST", "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&context=locked&sync=true"
        )
        assert status == 200, body
        _, jobs, _ = await api.call("GET", "/jobs")
        assert [job["classPath"] for job in jobs] == ["example_jobs.echo.EchoJob"]
