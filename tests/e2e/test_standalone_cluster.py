"""A real Spark standalone cluster, started from pyspark's own distribution (a master and a
worker through ``bin/spark-class`` on free ports): a context runs on it in client mode, a job
survives the loss of its worker once another one joins, and cluster deploy mode is answered 400
before spark-submit runs. Every JVM the module starts, it stops."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest
import pytest_asyncio

from tests.support import SPARK_TEST_OVERRIDES, Api, free_port, running_server, wait_until

pytestmark = [pytest.mark.spark, pytest.mark.asyncio(loop_scope="module")]

SPARK_HOME = Path(pyspark.__file__).resolve().parent
SLEEP = "example_jobs.sleep_job.SleepJob"
WORD_COUNT = "example_jobs.word_count.WordCountSparkSessionJob"


@dataclass
class Standalone:
    master_url: str
    web_url: str
    folder: Path
    processes: list[subprocess.Popen[bytes]]

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        environment = {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_WORKER_DIR": str(self.folder / name),
        }
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - open for the worker's lifetime
        worker = subprocess.Popen(
            [str(SPARK_HOME / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
             "--host", "127.0.0.1", "--webui-port", str(free_port()), "--cores", "2", "--memory", "1g",
             self.master_url],
            env=environment, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        self.processes.append(worker)
        return worker

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"{self.web_url}/json/", timeout=5) as answer:
            state = json.loads(answer.read())
        return sum(1 for worker in state["workers"] if worker["state"] == "ALIVE")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    folder = tmp_path_factory.mktemp("standalone")
    port, web_port = free_port(), free_port()
    environment = {**os.environ, "SPARK_HOME": str(SPARK_HOME)}
    log = open(folder / "master.log", "wb")  # noqa: SIM115 - open for the master's lifetime
    master = subprocess.Popen(
        [str(SPARK_HOME / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
         "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(web_port)],
        env=environment, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    cluster = Standalone(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web_port}", folder, [master])
    try:
        cluster.start_worker("worker-1")
        asyncio.run(
            wait_until(_workers(cluster, 1), timeout_s=90, what="a worker to register with the master")
        )
        yield cluster
    finally:
        for process in reversed(cluster.processes):
            stop(process)
        log.close()


def _workers(cluster: Standalone, count: int):  # type: ignore[no-untyped-def]
    async def registered() -> bool:
        try:
            return await asyncio.to_thread(cluster.alive_workers) == count
        except OSError:
            return False

    return registered


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(standalone: Standalone, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    overrides = {
        **SPARK_TEST_OVERRIDES,
        "spark.master": standalone.master_url,
        "spark.context-settings.spark.executor.memory": "512m",
        "spark.context-settings.spark.cores.max": 2,
    }
    async with running_server(tmp_path_factory.mktemp("standalone-server"), overrides) as api:
        await api.upload("examples")
        status, body, _ = await api.call("POST", "/contexts/on-cluster")
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context initialized"})
        yield api


async def test_a_context_runs_jobs_on_the_standalone_cluster(api: Api) -> None:
    _, context, _ = await api.call("GET", "/contexts/on-cluster")
    assert context["state"] == "RUNNING" and context["applicationId"].startswith("app-")
    path = f"/jobs?appName=examples&classPath={WORD_COUNT}&context=on-cluster&sync=true&timeout=120"
    status, body, _ = await api.call("POST", path, data='input.strings = ["a", "b", "a"]')
    assert (status, body["result"]) == (200, {"a": 2, "b": 1})


async def test_a_job_whose_worker_dies_finishes_once_another_worker_joins(
    api: Api, standalone: Standalone
) -> None:
    path = f"/jobs?appName=examples&classPath={SLEEP}&context=on-cluster"
    status, job, _ = await api.call("POST", path, data="sleep.seconds = 4")
    assert status == 202
    await api.wait_job_state(job["jobId"], "RUNNING")
    first = standalone.processes[1]
    stop(first)  # the worker and its executor, mid-job
    report = (await api.call("GET", f"/jobs/{job['jobId']}"))[1]
    assert report["status"] == "RUNNING"  # the job waits for resources; nothing is lost
    standalone.start_worker("worker-2")
    finished = await api.wait_job_state(job["jobId"], "FINISHED", "ERROR", timeout_s=180)
    assert (finished["status"], finished["result"]) == ("FINISHED", 80)
    assert (await api.call("GET", "/contexts/on-cluster"))[1]["state"] == "RUNNING"


async def test_cluster_deploy_mode_on_a_standalone_master_is_a_400_before_spark_submit(
    standalone: Standalone, tmp_path: Path
) -> None:
    # Clients may not choose the deploy mode unless the operator lets them: this one does.
    overrides = {"spark.master": standalone.master_url, "spark.jobserver.client-settings.denied": []}
    async with running_server(tmp_path, overrides) as api:
        status, body, _ = await api.call("POST", "/contexts/remote?launcher.spark.submit.deployMode=cluster")
        assert status == 400
        assert "not supported for Python applications on Spark standalone" in body["result"]
        assert "remote" not in (await api.call("GET", "/contexts"))[1]
        assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())  # nothing ran
