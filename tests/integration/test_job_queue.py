"""Beyond max-jobs-per-context, jobs wait in a bounded FIFO queue per context instead of a 503."""

from __future__ import annotations

import asyncio
import datetime
import itertools
from pathlib import Path

from tests.support import FAKE_SPARK_HOMES, Api, running_server

SLEEP = "example_jobs.sleep_job.PythonSleepJob"


def end_time(report: dict) -> float:
    started = datetime.datetime.fromisoformat(report["startTime"]).timestamp()
    return started + float(report["duration"].removesuffix(" secs"))


async def submit(api: Api, seconds: float, *, extra: str = "") -> tuple[int, dict]:
    status, body, _ = await api.call(
        "POST",
        f"/jobs?appName=examples&classPath={SLEEP}&context=busy{extra}",
        data=f"sleep.seconds = {seconds}",
    )
    return status, body


# One job runs at a time in a context, two wait: small enough to fill in a test.
ONE_SLOT_TWO_QUEUED = {
    "spark.home": str(FAKE_SPARK_HOMES / "light"),
    "spark.jobserver.max-jobs-per-context": 1,
    "spark.jobserver.max-queued-jobs-per-context": 2,
}


async def test_queue_fills_drains_in_order_and_a_killed_queued_job_never_starts(tmp_path: Path) -> None:
    async with running_server(tmp_path, ONE_SLOT_TWO_QUEUED) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/busy"))[0] == 200
        status, first = await submit(api, 1.0)
        assert status == 202
        await api.wait_job_state(first["jobId"], "RUNNING")
        status, second = await submit(api, 0.2)
        assert (status, second["status"]) == (202, "STARTED")
        status, doomed = await submit(api, 0.2)
        assert status == 202
        status, body = await submit(api, 0.2)
        assert (status, body) == (
            503,
            {"status": "NO SLOTS AVAILABLE", "result": "Too many running jobs (1) for job context 'busy'"},
        )
        assert (await api.call("GET", f"/jobs/{second['jobId']}"))[1]["status"] == "STARTED"
        assert (await api.call("DELETE", f"/jobs/{doomed['jobId']}"))[:2] == (200, {"status": "KILLED"})

        # A sync request waits in the queue, within its timeout, behind the others.
        status, synced = await submit(api, 0.1, extra="&sync=true&timeout=30")
        assert (status, synced["result"]) == (200, 0.1)

        first_report = await api.wait_job_state(first["jobId"], "FINISHED")
        second_report = await api.wait_job_state(second["jobId"], "FINISHED")
        # The second job ran (0.2 s) only after the first had ended: one slot, first come first served.
        assert end_time(second_report) - end_time(first_report) >= 0.2
        killed = (await api.call("GET", f"/jobs/{doomed['jobId']}"))[1]
        assert killed["status"] == "KILLED"


async def test_sync_requests_that_time_out_answer_202_and_their_jobs_go_on(tmp_path: Path) -> None:
    """A sync request still waiting at its timeout gets the job's report (202), whether its job
    runs or waits in the queue, and the job still ends as it would have."""
    async with running_server(tmp_path, ONE_SLOT_TWO_QUEUED) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/busy"))[0] == 200
        status, running = await submit(api, 3.0, extra="&sync=true&timeout=1")
        assert (status, running["status"]) == (202, "STARTED")
        status, queued = await submit(api, 0.1, extra="&sync=true&timeout=1")
        assert (status, queued["status"]) == (202, "STARTED")
        assert (await api.wait_job_state(running["jobId"], "FINISHED"))["result"] == 3.0
        assert (await api.wait_job_state(queued["jobId"], "FINISHED"))["result"] == 0.1


async def test_sync_answers_given_as_results_arrive_are_stored_and_free_the_slot(tmp_path: Path) -> None:
    """Sync answers given as a result arrives (before it is stored) are what the store then holds,
    and each frees the one slot for the next queued job, in order."""
    async with running_server(tmp_path, ONE_SLOT_TWO_QUEUED) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/busy"))[0] == 200
        for at_once in (1, 3):  # alone, then three at once (one runs, two wait in the queue)
            requests = [submit(api, 0.05, extra="&sync=true&timeout=30") for _ in range(at_once)]
            answers = await asyncio.gather(*requests)
            assert [(status, sorted(body), body["result"]) for status, body in answers] == [
                (200, ["jobId", "result"], 0.05)
            ] * at_once
            for _, body in answers:
                status, report, _ = await api.call("GET", f"/jobs/{body['jobId']}")
                assert (status, report["status"], report["result"]) == (200, "FINISHED", 0.05)
            reports = [await api.wait_job_state(body["jobId"], "FINISHED") for _, body in answers]
            ends = sorted(end_time(report) for report in reports)
            # one after the other (times are stored to the millisecond)
            assert all(later - earlier >= 0.048 for earlier, later in itertools.pairwise(ends))
        jobs = (await api.call("GET", "/jobs?status=FINISHED"))[1]
        assert len(jobs) == 4
