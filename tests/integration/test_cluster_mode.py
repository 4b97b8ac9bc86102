"""Cluster deploy mode with the driver's packed Python environment, against a stand-in
spark-submit (tests/fakes/cluster) that does with the command line what YARN or Kubernetes does:
it unpacks the --archives into a container folder of its own and starts the driver there with
the archive's interpreter and a clean environment."""

from __future__ import annotations

import asyncio
import zipfile
from pathlib import Path
from typing import Any

from tests.support import EXAMPLES_WHEEL, FAKE_SPARK_HOMES, processes_mentioning, running_server, wait_until

ECHO = "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&sync=true"

# A job that tells where its driver's Python and packages come from.
WHERE = """
import os, sys
import driver, msgpack, zmq

def main(spark, config):
    return {
        "executable": sys.executable,
        "zmq": zmq.__file__,
        "msgpack": msgpack.__file__,
        "driver": driver.__file__,
        "path": sys.path,
        "cwd": os.getcwd(),
        "home": os.environ.get("HOME", ""),
        "environment": sorted(os.environ),
    }
"""


def yarn_cluster(work_dir: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "spark.home": str(FAKE_SPARK_HOMES / "cluster"),
        "spark.master": "yarn",
        "spark.submit.deployMode": "cluster",
        # Job packages over the bus, as a driver on another host fetches them.
        "spark.jobserver.driver.binaries": "bus",
        "spark.jobserver.store.url": f"sqlite:///{work_dir / 'metadata.db'}",
        **overrides,
    }


async def test_a_cluster_mode_driver_runs_from_the_shipped_environment_alone(tmp_path: Path) -> None:
    package = tmp_path / "where.egg"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("where.py", WHERE)
    work_dir = tmp_path / "server"
    async with running_server(work_dir, yarn_cluster(work_dir)) as api:
        await api.upload("examples", EXAMPLES_WHEEL)
        await api.upload("where", package, "application/python-archive")
        # Two contexts at once: one build of the archive, both drivers ship it.
        created = await asyncio.gather(api.call("POST", "/contexts/east"), api.call("POST", "/contexts/west"))
        assert [status for status, _, _ in created] == [200, 200], created
        archives = list((work_dir / "python-envs").glob("*/driver-python.tar.gz"))
        assert len(archives) == 1 and not list((work_dir / "python-envs").glob(".building-*"))

        status, body, _ = await api.call("POST", f"{ECHO}&context=east", data='{"input": "from the node"}')
        assert (status, body["result"]) == (200, "from the node")

        status, body, _ = await api.call(
            "POST", "/jobs?appName=where&classPath=where:main&context=west&sync=true"
        )
        assert status == 200, body
        where = body["result"]
        _, west, _ = await api.call("GET", "/contexts/west")
        drivers = work_dir / "drivers" / west["id"]
        container = Path(where["cwd"])
        assert container.parent == drivers and container.name.startswith("container-")
        environment = container / "environment"
        assert where["executable"] == str(environment / "bin" / "python")
        assert Path(where["zmq"]).is_relative_to(environment)
        assert Path(where["msgpack"]).is_relative_to(environment)
        assert Path(where["driver"]).is_relative_to(container / "driver-bundle.zip")  # --py-files
        assert where["home"] == str(container / "home")
        assert "JOBSERVER_DRIVER_SECRETS" not in where["environment"]  # its secrets came with --files
        # Nothing on its path from the server's installation: not the repository, not its venv.
        repository = str(Path(__file__).resolve().parents[2])
        assert not [entry for entry in where["path"] if entry.startswith((repository, "/work/main"))]

        ids = [west["id"], (await api.call("GET", "/contexts/east"))[1]["id"]]
        for name in ("east", "west"):
            assert (await api.call("DELETE", f"/contexts/{name}"))[0] == 200
        for name in ("east", "west"):
            assert (await api.wait_context_state(name, "FINISHED"))["state"] == "FINISHED"

        async def no_driver_left() -> bool:
            return not any(processes_mentioning(context_id) for context_id in ids)

        await wait_until(no_driver_left, timeout_s=15, what="the drivers to exit")


async def test_an_archive_that_cannot_be_built_fails_the_context_with_the_reason(tmp_path: Path) -> None:
    work_dir = tmp_path / "server"
    work_dir.mkdir()
    (work_dir / "python-envs").write_text("a file where the archives' folder belongs")
    async with running_server(work_dir, yarn_cluster(work_dir)) as api:
        status, body, _ = await api.call("POST", "/contexts/unbuilt")
        assert (status, body["status"], body["result"]["errorClass"]) == (
            500,
            "CONTEXT INIT ERROR",
            "PythonArchiveError",
        )
        assert "cannot build the driver's Python environment archive" in body["result"]["message"]
        assert not processes_mentioning(str(work_dir / "drivers"))


async def test_without_the_archive_a_node_has_no_interpreter_for_the_driver(tmp_path: Path) -> None:
    # The server's interpreter is a path on its own disk: the stand-in node refuses it, as a
    # real node without that Python would fail.
    work_dir = tmp_path / "server"
    overrides = yarn_cluster(work_dir, **{"spark.jobserver.driver.python-archive": "off"})
    async with running_server(work_dir, overrides) as api:
        status, body, _ = await api.call("POST", "/contexts/bare")
        assert (status, body["status"]) == (500, "CONTEXT INIT ERROR"), body
        assert "no interpreter" in body["result"]["stack"]
        assert not (work_dir / "python-envs").exists()
