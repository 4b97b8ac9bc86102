"""A warm pool with real Spark: a pooled driver is reused, replaced after a job that left a
temporary view and after max-jobs, and the pool is filled again. Three JVMs in all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import SPARK_TEST_OVERRIDES, Api, processes_mentioning, running_server, wait_until

pytestmark = pytest.mark.spark

JOBS = b"""import os


def pid(spark, config):
    return os.getpid()


def view(spark, config):
    spark.range(3).createOrReplaceTempView("tenant_view")
    return os.getpid()
"""


async def _run(api: Api, function: str) -> dict[str, Any]:
    """The job's report once it finished, with its result (the pid of the driver that ran it)."""
    status, body, _ = await api.call(
        "POST", f"/jobs?cp=tenant_jobs&mainClass=tenant_jobs:{function}&sync=true&timeout=120"
    )
    assert status == 200, body
    _, report, _ = await api.call("GET", f"/jobs/{body['jobId']}")
    return report


async def _pool_holds(api: Api, count: int, idle: int) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        _, pools, _ = await api.call("GET", "/pools")
        pool = pools[0]
        return pool if len(pool["contextIds"]) == count and pool["idle"] == idle else None

    return await wait_until(settled, timeout_s=120, interval_s=0.2, what=f"pool of {count}, {idle} idle")


async def test_a_pooled_spark_driver_is_reused_recycled_and_refilled(tmp_path: Path) -> None:
    pool = {"warm": {"size": 1, "max-jobs": 2, "idle-timeout": "10m"}}
    async with running_server(tmp_path, {**SPARK_TEST_OVERRIDES, "spark.jobserver.pool": pool}) as api:
        headers = {"Content-Type": "text/x-python"}
        assert (await api.call("POST", "/binaries/tenant_jobs", data=JOBS, headers=headers))[0] == 201
        first = (await _pool_holds(api, 1, 1))["contextIds"][0]

        one = await _run(api, "pid")  # takes the warm driver; a second one starts meanwhile
        assert (one["contextId"], one["context"]) == (first, "<<ad-hoc>>")
        two = await _run(api, "view")  # the same driver again: it was clean
        assert (two["contextId"], two["result"]) == (first, one["result"])
        assert (await api.call("GET", "/contexts"))[1] == []

        # the temporary view the job left makes the driver go; the second one serves on
        second = (await _pool_holds(api, 1, 1))["contextIds"][0]
        assert second != first
        await wait_until(lambda: _gone(first), timeout_s=60, what="the recycled driver's processes gone")
        three, four = await _run(api, "pid"), await _run(api, "pid")
        assert three["contextId"] == four["contextId"] == second and three["result"] != one["result"]

        # four was its second job (max-jobs = 2): replaced by a third driver, launched when three took it
        third = (await _pool_holds(api, 1, 1))["contextIds"][0]
        assert third not in (first, second)


async def _gone(context_id: str) -> bool:
    return not processes_mentioning(context_id)
