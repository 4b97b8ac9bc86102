"""The driver's packed Python environment for cluster deploy mode: the command line that ships
it, the archive itself, and the setting that chooses it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from jobserver.common.config import load_settings
from jobserver.common.errors import ConfigError
from jobserver.drivers.launcher import DRIVER_SCRIPT, DriverCommand, DriverLaunch, build_driver_command
from jobserver.drivers.python_archive import PythonArchives, build_archive

ARCHIVE = Path("/var/jobserver/python-envs/0f1e2d/driver-python.tar.gz")
SECRETS_FILE = Path("/var/jobserver/drivers/ctx-0001/driver-secrets-x1y2.json")
IN_ARCHIVE = "./environment/bin/python"


def launch(master: str, deploy_mode: str = "cluster", archive: Path | None = ARCHIVE) -> DriverLaunch:
    return DriverLaunch(
        spark_home=Path("/opt/spark"),
        master=master,
        deploy_mode=deploy_mode,
        python="/usr/bin/python3.11",
        bus_endpoint="tcp://gateway.example:41000",
        bundle=Path("/var/jobserver/driver-bundle.zip"),
        python_archive=archive,
    )


def command(driver_launch: DriverLaunch, context_config: Mapping[str, Any] | None = None) -> DriverCommand:
    return build_driver_command(
        driver_launch,
        context_id="ctx-0001",
        context_name="remote",
        context_config=context_config or {},
        secrets_file=SECRETS_FILE,
    )


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[index + 1] for index, item in enumerate(argv[:-1]) if item == option]


def confs(argv: list[str]) -> dict[str, str]:
    head = argv[: argv.index(str(DRIVER_SCRIPT))]
    return dict(value.split("=", 1) for value in option_values(head, "--conf"))


# --- the command line ------------------------------------------------------------------------------


def test_yarn_cluster_mode_ships_the_archive_and_runs_the_driver_from_it() -> None:
    result = command(launch("yarn"))
    assert option_values(result.argv, "--archives") == [f"{ARCHIVE}#environment"]
    spark = confs(result.argv)
    assert spark["spark.pyspark.python"] == IN_ARCHIVE
    assert spark["spark.pyspark.driver.python"] == IN_ARCHIVE
    assert spark["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] == IN_ARCHIVE
    assert result.env["PYSPARK_PYTHON"] == result.env["PYSPARK_DRIVER_PYTHON"] == IN_ARCHIVE
    assert "/usr/bin/python3.11" not in " ".join(result.argv)  # the server's interpreter stays home


def test_kubernetes_cluster_mode_ships_the_archive_without_yarns_settings() -> None:
    result = command(launch("k8s://https://kubernetes.example:6443"))
    assert option_values(result.argv, "--archives") == [f"{ARCHIVE}#environment"]
    spark = confs(result.argv)
    assert (spark["spark.pyspark.python"], spark["spark.pyspark.driver.python"]) == (IN_ARCHIVE, IN_ARCHIVE)
    assert not any(key.startswith("spark.yarn.") for key in spark)


def test_the_contexts_own_archives_travel_in_the_same_option() -> None:
    settings = {"launcher": {"archives": "hdfs:///lib/models.zip#models"}, "spark.archives": "/data/a.tgz"}
    result = command(launch("yarn"), settings)
    assert option_values(result.argv, "--archives") == [
        f"hdfs:///lib/models.zip#models,/data/a.tgz,{ARCHIVE}#environment"
    ]
    assert "spark.archives" not in confs(result.argv)


def test_a_context_naming_its_own_interpreter_ships_no_archive() -> None:
    result = command(launch("yarn"), {"python": {"executable": "/opt/python3.11/bin/python3"}})
    assert "--archives" not in result.argv
    assert confs(result.argv)["spark.pyspark.python"] == "/opt/python3.11/bin/python3"


def test_client_mode_runs_the_servers_interpreter_and_ships_nothing() -> None:
    result = command(launch("yarn", deploy_mode="client"))
    assert "--archives" not in result.argv
    assert confs(result.argv)["spark.pyspark.python"] == "/usr/bin/python3.11"
    launched = command(
        launch("yarn", deploy_mode="client"), {"launcher": {"spark.submit.deployMode": "cluster"}}
    )
    assert option_values(launched.argv, "--archives") == [f"{ARCHIVE}#environment"]


# --- the archive -----------------------------------------------------------------------------------


def test_the_archive_runs_the_drivers_packages_elsewhere_with_a_clean_environment(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "python-envs")
    assert build_archive(tmp_path / "python-envs") == archive  # the same dependency set: no rebuild
    node = tmp_path / "node" / "environment"
    with tarfile.open(archive) as packed:
        assert {"bin", "lib", "pyvenv.cfg"} <= {name.split("/")[0] for name in packed.getnames()}
        packed.extractall(node, filter="data")
    probe = "import sys, zmq, msgpack, pyhocon; print(zmq.__file__); print(sys.path)"
    answer = subprocess.run(
        [str(node / "bin" / "python"), "-c", probe],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path / "node",
        capture_output=True,
        text=True,
        check=True,
    )
    zmq_file, path = answer.stdout.splitlines()
    assert zmq_file.startswith(str(node))
    assert str(Path(sys.prefix)) not in path  # nothing from the server's own environment
    assert "pyspark" not in answer.stdout and not list(node.rglob("pyspark"))  # the cluster's own


async def test_contexts_starting_together_build_the_archive_once(tmp_path: Path) -> None:
    archives = PythonArchives("auto", tmp_path)
    cluster = launch("yarn", archive=None)
    first, second = await asyncio.gather(archives.for_launch(cluster, {}), archives.for_launch(cluster, {}))
    assert first.python_archive is not None and first.python_archive == second.python_archive
    assert [entry.name for entry in (tmp_path / "python-envs").iterdir()] == [
        first.python_archive.parent.name
    ]
    client = await archives.for_launch(launch("yarn", deploy_mode="client", archive=None), {})
    assert client.python_archive is None


async def test_off_and_a_prebuilt_archive_are_taken_as_they_are(tmp_path: Path) -> None:
    cluster = launch("yarn", archive=None)
    assert (await PythonArchives("off", tmp_path).for_launch(cluster, {})).python_archive is None
    prebuilt = await PythonArchives(str(ARCHIVE), tmp_path).for_launch(cluster, {})
    assert prebuilt.python_archive == ARCHIVE
    assert not (tmp_path / "python-envs").exists()


# --- the setting -----------------------------------------------------------------------------------


def test_the_setting_is_auto_by_default_and_a_path_must_exist(tmp_path: Path) -> None:
    assert load_settings(None, {"spark.jobserver.work-dir": str(tmp_path)}).driver_python_archive == "auto"
    prebuilt = tmp_path / "env.tar.gz"
    prebuilt.write_bytes(b"")
    chosen = load_settings(None, {"spark.jobserver.driver.python-archive": str(prebuilt)})
    assert chosen.driver_python_archive == str(prebuilt)
    with pytest.raises(ConfigError, match="python-archive must be auto, off or an existing archive file"):
        load_settings(None, {"spark.jobserver.driver.python-archive": str(tmp_path / "missing.tar.gz")})
