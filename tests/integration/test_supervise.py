"""Supervise mode: the server launches a supervised context's dead driver again and reruns its
jobs with the same ids; after max-restarts it gives up. Stand-in spark-submits (no JVM)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.support import FAKE_SPARK_HOMES, Api, processes_mentioning, running_server, wait_until

SLEEP = "example_jobs.sleep_job.PythonSleepJob"
FAST = {
    "spark.home": str(FAKE_SPARK_HOMES / "light"),
    "spark.jobserver.supervise.backoff": "200ms",
    "spark.jobserver.heartbeat.interval": "200ms",
}


async def _kill_driver(api: Api, name: str) -> list[int]:
    _, context, _ = await api.call("GET", f"/contexts/{name}")
    pids = processes_mentioning(context["id"])
    assert pids, "the context's driver should be running"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


async def test_a_killed_supervised_driver_is_relaunched_and_its_job_runs_again(tmp_path: Path) -> None:
    async with running_server(tmp_path, FAST) as api:
        await api.upload("examples")
        status, _, _ = await api.call("POST", "/contexts/guarded?launcher.spark.driver.supervise=true")
        assert status == 200
        _, submitted, _ = await api.call(
            "POST", f"/jobs?appName=examples&classPath={SLEEP}&context=guarded", data="sleep.seconds = 1.5"
        )
        job_id = submitted["jobId"]
        await api.wait_job_state(job_id, "RUNNING")
        first_pids = await _kill_driver(api, "guarded")

        seen = await api.wait_job_state(job_id, "RESTARTING", "FINISHED", timeout_s=10)
        assert seen["status"] == "RESTARTING" or seen["result"] == 1.5
        context = await api.wait_context_state("guarded", "RUNNING", timeout_s=20)
        finished = await api.wait_job_state(job_id, "FINISHED", timeout_s=20)
        assert finished["result"] == 1.5, "the same job id ran again in the new driver"
        new_pids = processes_mentioning(context["id"])
        assert new_pids and not set(new_pids) & set(first_pids)
        _, jobs, _ = await api.call("GET", "/jobs")
        assert [job["jobId"] for job in jobs] == [job_id], "rerun under the same id, not a new job"


async def test_supervise_gives_up_after_max_restarts(tmp_path: Path) -> None:
    overrides = {**FAST, "spark.driver.supervise": True, "spark.jobserver.supervise.max-restarts": 1}
    async with running_server(tmp_path, overrides) as api:
        await api.upload("examples")
        assert (await api.call("POST", "/contexts/fragile"))[0] == 200
        _, submitted, _ = await api.call(
            "POST", f"/jobs?appName=examples&classPath={SLEEP}&context=fragile", data="sleep.seconds = 60"
        )
        await api.wait_job_state(submitted["jobId"], "RUNNING")
        first = await _kill_driver(api, "fragile")
        _, context, _ = await api.call("GET", "/contexts/fragile")
        await wait_until(lambda: _relaunched(context["id"], first), timeout_s=20, what="a new driver")
        await api.wait_context_state("fragile", "RUNNING", timeout_s=20)
        await api.wait_job_state(submitted["jobId"], "RUNNING", timeout_s=20)
        await _kill_driver(api, "fragile")

        context = await api.wait_context_state("fragile", "ERROR", timeout_s=20)
        assert "supervise gave up after 1 restart(s)" in context["error"]
        job = await api.wait_job_state(submitted["jobId"], "ERROR", timeout_s=5)
        assert "supervise gave up" in job["result"]["message"]
        await wait_until(lambda: _gone(context["id"]), timeout_s=10, what="no driver left")


async def test_deleting_a_supervised_context_does_not_restart_it(tmp_path: Path) -> None:
    async with running_server(tmp_path, {**FAST, "spark.driver.supervise": True}) as api:
        assert (await api.call("POST", "/contexts/calm"))[0] == 200
        _, context, _ = await api.call("GET", "/contexts/calm")
        status, body, _ = await api.call("DELETE", "/contexts/calm")
        assert (status, body["status"]) == (200, "SUCCESS")
        assert (await api.call("GET", "/contexts/calm"))[1]["state"] == "FINISHED"
        assert not processes_mentioning(context["id"])


async def _relaunched(context_id: str, old_pids: list[int]) -> bool:
    pids = processes_mentioning(context_id)
    return bool(pids) and not set(pids) & set(old_pids)


async def _gone(context_id: str) -> bool:
    return not processes_mentioning(context_id)
