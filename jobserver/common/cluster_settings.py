"""The clusters a server submits to (``spark.jobserver.clusters``), read into checked values.

Each named cluster has its master, its Spark installation, the environment its spark-submit and
drivers need (``HADOOP_CONF_DIR``, ``YARN_CONF_DIR``, ``KUBECONFIG``, …), Spark settings of its
own, a Kerberos login (``principal`` and ``keytab``: Spark logs in and renews the ticket) and
context settings its contexts start from. A context or an ad-hoc job picks one with
``cluster=<name>``; the first is the default. With no ``clusters`` block the server has one
cluster, ``default``, made of ``spark.master``, ``spark.home`` and ``spark.submit.deployMode``.

Mesos is refused: Spark 4 removed its support (a ``mesos://`` master here is a start-up error).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobserver.common.errors import BadRequest, ConfigError
from jobserver.common.values import flatten_keys

DEFAULT_CLUSTER = "default"
KNOWN_KEYS = frozenset(
    {"master", "spark-home", "deploy-mode", "env", "spark-conf", "principal", "keytab", "default-settings"}
)
DEPLOY_MODES = ("client", "cluster")


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    name: str
    master: str
    spark_home: Path
    deploy_mode: str
    env: Mapping[str, str] = field(default_factory=dict)
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    principal: str = ""
    keytab: str = ""
    default_settings: Mapping[str, Any] = field(default_factory=dict)


class Clusters:
    """The configured clusters, in order; the first is the default."""

    def __init__(self, clusters: tuple[ClusterSettings, ...]) -> None:
        self.all = clusters
        self._by_name = {cluster.name: cluster for cluster in clusters}

    @property
    def default(self) -> ClusterSettings:
        return self.all[0]

    def named(self, name: str | None) -> ClusterSettings:
        """The cluster called ``name`` (None: the default); 400 naming the clusters otherwise."""
        if name is None or name == "":
            return self.default
        cluster = self._by_name.get(str(name))
        if cluster is None:
            known = ", ".join(self._by_name)
            raise BadRequest(f"Unknown cluster {name}; the clusters are: {known}")
        return cluster


def unsupported_target(master: str, deploy_mode: str) -> str | None:
    """Why spark-submit would refuse to run this server's (Python) driver there, or None."""
    if deploy_mode != "cluster":
        return None
    if master.startswith("spark://"):
        return (
            "cluster deploy mode is not supported for Python applications on Spark standalone "
            "clusters (spark-submit refuses it); run the context in client mode"
        )
    if master.startswith("local"):
        return f"cluster deploy mode is not compatible with master {master}"
    return None


def cluster_settings(
    clusters: Mapping[str, Any], *, master: str, spark_home: Path, deploy_mode: str
) -> Clusters:
    """``spark.jobserver.clusters`` checked; ``master``, ``spark_home`` and ``deploy_mode`` (the
    server's own) make the one cluster when the block is empty, and fill what a cluster omits."""
    if not clusters:
        return Clusters((_checked(DEFAULT_CLUSTER, {}, master, spark_home, deploy_mode),))
    return Clusters(
        tuple(
            _checked(str(name), section or {}, master, spark_home, deploy_mode)
            for name, section in clusters.items()
        )
    )


def _checked(
    name: str, section: Mapping[str, Any], master: str, spark_home: Path, deploy_mode: str
) -> ClusterSettings:
    where = f"spark.jobserver.clusters.{name}"
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where} must be a block of settings")
    unknown = sorted(set(section) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]} (known: {', '.join(sorted(KNOWN_KEYS))})")
    cluster_master = str(section.get("master", master))
    if cluster_master.startswith("mesos://"):
        raise ConfigError(f"{where}.master: Mesos is not supported: Spark 4 removed its Mesos support")
    mode = str(section.get("deploy-mode", deploy_mode))
    if mode not in DEPLOY_MODES:
        raise ConfigError(f"{where}.deploy-mode must be client or cluster, got {mode!r}")
    refusal = unsupported_target(cluster_master, mode)
    if refusal is not None:
        raise ConfigError(f"{where}: {refusal}")
    principal, keytab = str(section.get("principal", "") or ""), str(section.get("keytab", "") or "")
    if bool(principal) != bool(keytab):
        raise ConfigError(f"{where}: principal and keytab go together (Spark logs in with both)")
    if keytab and not Path(keytab).is_file():
        raise ConfigError(f"{where}.keytab: {keytab} is not a readable file")
    spark_conf = flatten_keys(_block(section, "spark-conf", where))
    return ClusterSettings(
        name=name,
        master=cluster_master,
        spark_home=Path(str(section["spark-home"])) if section.get("spark-home") else spark_home,
        deploy_mode=mode,
        env={str(key): str(value) for key, value in _block(section, "env", where).items()},
        spark_conf={key: _text(value) for key, value in spark_conf.items()},
        principal=principal,
        keytab=keytab,
        default_settings=_block(section, "default-settings", where),
    )


def _block(section: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = section.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.{key} must be a block of settings")
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
