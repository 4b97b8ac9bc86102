"""Named clusters (spark.jobserver.clusters): read and checked at start-up, and what a driver on
one of them is launched with."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobserver.common.cluster_settings import cluster_settings
from jobserver.common.config import load_settings
from jobserver.common.errors import BadRequest, ConfigError
from jobserver.drivers.launcher import DRIVER_SCRIPT, DriverLaunch, build_driver_command, for_cluster

SERVER_SPARK = Path("/opt/spark")
BASE = DriverLaunch(
    spark_home=SERVER_SPARK,
    master="local[*]",
    deploy_mode="client",
    python="/usr/bin/python3",
    bus_endpoint="tcp://gateway:41000",
    bundle=Path("/var/jobserver/bundle.zip"),
)


def clusters(block: dict[str, object]):  # type: ignore[no-untyped-def]
    return cluster_settings(block, master="local[*]", spark_home=SERVER_SPARK, deploy_mode="client")


def test_no_clusters_block_is_one_default_cluster_of_the_servers_spark() -> None:
    (only,) = clusters({}).all
    assert (only.name, only.master, only.spark_home, only.deploy_mode) == (
        "default",
        "local[*]",
        SERVER_SPARK,
        "client",
    )


def test_clusters_in_order_the_first_the_default_and_each_fills_what_it_omits(tmp_path: Path) -> None:
    keytab = tmp_path / "jobserver.keytab"
    keytab.write_bytes(b"\x05\x02")
    configured = clusters(
        {
            "yarn-east": {
                "master": "yarn",
                "spark-home": "/opt/spark-east",
                "env": {"HADOOP_CONF_DIR": "/etc/hadoop/east"},
                "spark-conf": {"spark": {"yarn": {"queue": "etl"}}},
                "principal": "jobserver@EAST",
                "keytab": str(keytab),
                "default-settings": {"num-cpu-cores": 4},
            },
            "k8s": {"master": "k8s://https://kube:6443", "deploy-mode": "cluster"},
        }
    )
    east, k8s = configured.all
    assert configured.default is east and configured.named(None) is east and configured.named("k8s") is k8s
    assert (east.spark_conf, east.env, east.default_settings) == (
        {"spark.yarn.queue": "etl"},
        {"HADOOP_CONF_DIR": "/etc/hadoop/east"},
        {"num-cpu-cores": 4},
    )
    assert (k8s.spark_home, k8s.deploy_mode, k8s.principal) == (SERVER_SPARK, "cluster", "")
    with pytest.raises(BadRequest, match="Unknown cluster west; the clusters are: yarn-east, k8s"):
        configured.named("west")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"old": {"master": "mesos://zk:2181"}}, "Mesos is not supported: Spark 4 removed"),
        ({"x": {"principal": "a@B"}}, "principal and keytab go together"),
        ({"x": {"principal": "a@B", "keytab": "/no/such.keytab"}}, "is not a readable file"),
        ({"x": {"deploy-mode": "remote"}}, "deploy-mode must be client or cluster"),
        ({"x": {"queue": "etl"}}, "unknown key queue"),
        ({"x": "yarn"}, "must be a block of settings"),
    ],
)
def test_a_cluster_that_cannot_work_stops_the_server_at_start_up(
    block: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        clusters(block)


def test_a_mesos_master_of_the_server_itself_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Mesos is not supported"):
        load_settings(None, {"spark.master": "mesos://zk:2181", "spark.jobserver.work-dir": str(tmp_path)})


def test_a_driver_on_a_cluster_gets_its_master_home_environment_settings_and_login(tmp_path: Path) -> None:
    keytab = tmp_path / "jobserver.keytab"
    keytab.write_bytes(b"\x05\x02")
    (east,) = clusters(
        {
            "east": {
                "master": "yarn",
                "spark-home": "/opt/spark-east",
                "env": {"HADOOP_CONF_DIR": "/etc/hadoop/east"},
                "spark-conf": {"spark.yarn.queue": "etl", "spark.executor.cores": 2},
                "principal": "jobserver@EAST",
                "keytab": str(keytab),
            }
        }
    ).all
    command = build_driver_command(
        for_cluster(BASE, east),
        context_id="ctx-1",
        context_name="reports",
        context_config={"cluster": "east", "spark": {"yarn": {"queue": "reports"}}},
        secrets_file=tmp_path / "secrets",
    )
    argv = command.argv
    head = argv[: argv.index(str(DRIVER_SCRIPT))]
    assert argv[0] == "/opt/spark-east/bin/spark-submit"
    assert head[head.index("--master") + 1] == "yarn"
    assert head[head.index("--principal") + 1 : head.index("--principal") + 4] == [
        "jobserver@EAST",
        "--keytab",
        str(keytab),
    ]
    confs = [head[index + 1] for index, item in enumerate(head) if item == "--conf"]
    assert "spark.yarn.queue=reports" in confs  # the context's own setting over the cluster's
    assert "spark.executor.cores=2" in confs
    assert not any(conf.startswith("cluster") for conf in confs)
    assert (command.env["HADOOP_CONF_DIR"], command.env["SPARK_HOME"]) == (
        "/etc/hadoop/east",
        "/opt/spark-east",
    )


def test_a_standalone_cluster_in_cluster_deploy_mode_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="not supported for Python applications on Spark standalone"):
        clusters({"standalone": {"master": "spark://host:7077", "deploy-mode": "cluster"}})
