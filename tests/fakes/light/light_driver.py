"""The real driver (driver.__main__) with a stand-in for Spark: no JVM, same protocol, same jobs
as long as they do not touch Spark. Used through tests/fakes/light/bin/spark-submit."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import driver.__main__ as driver_main  # noqa: E402
from driver.spark import SparkHandle, factory_kind  # noqa: E402


class StandInStatusTracker:
    """Spark's status tracker as a job group that has run a while sees it: one Spark job running,
    its first stage done (4 tasks), its second running (2 of 4 tasks active, 1 done)."""

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def getJobIdsForGroup(self, group_id: str) -> list[int]:
        return [self._groups.index(group_id)] if group_id in self._groups else []

    def getJobInfo(self, job_id: int) -> SimpleNamespace:
        return SimpleNamespace(jobId=job_id, status="RUNNING", stageIds=[2 * job_id, 2 * job_id + 1])

    def getStageInfo(self, stage_id: int) -> SimpleNamespace:
        running = stage_id % 2
        return SimpleNamespace(
            stageId=stage_id,
            numTasks=4,
            numActiveTasks=2 if running else 0,
            numCompletedTasks=1 if running else 4,
            numFailedTasks=0,
        )

    def getActiveStageIds(self) -> list[int]:
        return [2 * index + 1 for index in range(len(self._groups))]


class StandInSparkContext:
    applicationId = "stand-in-0001"
    uiWebUrl = None
    version = "stand-in"

    def __init__(self) -> None:
        self.cancelled: list[str] = []
        self._local = threading.local()
        self._groups: list[str] = []

    def setJobGroup(self, group_id: str, description: str, interrupt: bool = False) -> None:
        self._local.group = group_id
        self._groups.append(group_id)

    def statusTracker(self) -> StandInStatusTracker:
        return StandInStatusTracker(self._groups)

    def cancelJobGroup(self, group_id: str) -> None:
        self.cancelled.append(group_id)

    def addPyFile(self, path: str) -> None:
        sys.path.insert(0, path)


class StandInConf:
    """spark.conf as far as a pooled driver looks at it (what a job set changes the session)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def set(self, key: str, value: object) -> None:
        self._values[key] = str(value)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._values.get(key, default)

    @property
    def getAll(self) -> dict[str, str]:
        return dict(self._values)


class StandInSession:
    def __init__(self) -> None:
        self.sparkContext = StandInSparkContext()
        self.conf = StandInConf()

    def stop(self) -> None:
        pass


def build_stand_in(context_config):
    # tests/fakes/slow: a Spark that takes this long to start (the driver is connected meanwhile)
    time.sleep(float(os.environ.get("STAND_IN_SPARK_START_S", "0")))
    session = StandInSession()
    return SparkHandle(kind=factory_kind(context_config), session=session, spark_context=session.sparkContext)


def driver_arguments(arguments: list[str]) -> list[str]:
    """What follows the driver script in a spark-submit command line."""
    for index, argument in enumerate(arguments):
        if argument.endswith("driver/__main__.py"):
            return arguments[index + 1 :]
    raise SystemExit("light spark-submit: no driver script in the arguments")


def enter_cluster_container(arguments: list[str]) -> None:
    """In cluster deploy mode, as a cluster manager would: the driver runs in a folder of its own
    holding the --files, without spark-submit's environment (nor the secrets file's path in it)."""
    options = dict(itertools.pairwise(arguments))
    if options.get("--deploy-mode") != "cluster":
        return
    container = Path.cwd() / "container"
    container.mkdir(mode=0o700)
    for name in options.get("--files", "").split(","):
        if name:
            shutil.copy(name, container / Path(name).name)
    os.environ.pop("JOBSERVER_DRIVER_SECRETS", None)
    os.chdir(container)


enter_cluster_container(sys.argv[1:])
sys.exit(driver_main.main(driver_arguments(sys.argv[1:]), make_spark=build_stand_in))
