"""Context settings that change how a real driver runs (one JVM): python.paths, python.executable
and mem-per-node, set per context by a client whose operator allows the python settings."""

from __future__ import annotations

import sys
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from tests.support import SPARK_TEST_OVERRIDES, running_server

pytestmark = pytest.mark.spark

PROBE_PACKAGE = """
def everywhere(spark, config):
    import probe_helper  # found only through the context's python.paths

    on_executors = (
        spark.sparkContext.parallelize(range(2), 2)
        .map(lambda _: __import__("probe_helper").WHERE)
        .distinct()
        .collect()
    )
    return {
        "driver": probe_helper.WHERE,
        "executors": on_executors,
        "executor_memory": spark.conf.get("spark.executor.memory"),
    }
"""


async def test_python_paths_and_executable_reach_a_real_driver_and_its_executors(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    (library / "probe_helper.py").write_text('WHERE = "from python.paths"\n')
    marker = tmp_path / "python-runs.log"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{marker}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    package = tmp_path / "paths_probe.egg"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("paths_probe/__init__.py", PROBE_PACKAGE)
    overrides = {
        **SPARK_TEST_OVERRIDES,
        "spark.jobserver.client-settings.allowed": ["memory-per-node", "python.*"],
    }
    async with running_server(tmp_path / "work", overrides) as api:
        await api.upload("probe", package, "application/python-archive")
        query = urllib.parse.urlencode(
            {"python.paths": str(library), "python.executable": str(wrapper), "mem-per-node": "600m"}
        )
        status, body, _ = await api.call("POST", f"/contexts/settings?{query}")
        assert (status, body) == (200, {"status": "SUCCESS", "result": "Context initialized"})
        status, body, _ = await api.call(
            "POST",
            "/jobs?appName=probe&classPath=paths_probe:everywhere&context=settings&sync=true&timeout=120",
        )
        assert status == 200, body
        assert body["result"] == {
            "driver": "from python.paths",
            "executors": ["from python.paths"],
            "executor_memory": "600m",
        }
        runs = marker.read_text().splitlines()
        assert any("driver/__main__.py" in run for run in runs), runs  # the driver ran under it
        assert any("pyspark" in run and "driver/__main__.py" not in run for run in runs), runs  # workers
        assert (await api.call("DELETE", "/contexts/settings"))[0] == 200
