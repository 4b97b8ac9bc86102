"""The spark-submit command line of a context's driver, as a pure function of its inputs.

Context settings map onto Spark the way spark-jobserver mapped them (sjs-contract §4.1):
``num-cpu-cores`` → ``spark.cores.max``, ``memory-per-node`` → ``spark.executor.memory``,
``python.executable`` → the driver's and executors' interpreter, ``python.paths`` → the executors'
``PYTHONPATH`` (the driver adds them itself), any ``spark.*`` key verbatim,
``passthrough { k = v }`` verbatim, ``hadoop { k = v }`` as ``spark.hadoop.k``, and
``launcher { … }`` onto spark-submit itself (``spark.*`` keys as ``--conf``, ``spark.master``
overriding the master, other keys as ``--key value``). The context's own jars
(``dependent-jar-uris`` and ``cp``, after any ``spark.jars``) become ``--jars``, so they are on the
driver's and the executors' classpath from the start. An entry without a ``/`` (no path, no URI)
is the name of an uploaded jar: it goes to ``--jars`` as the local file the server made of it,
which spark-submit also ships to a driver on another host (cluster deploy mode).

No secret is on the command line (visible in ``ps``, the Spark UI's environment tab, YARN's
logs): the driver's token and keys are in its secrets file. In client deploy mode the driver reads
it where the server wrote it (its path in the environment); in cluster deploy mode spark-submit
ships it with ``--files`` into the driver's working folder (on YARN through the user's private
staging folder) and the driver is told its name.

In cluster deploy mode the driver's Python environment travels too, when the launch has one
(``jobserver.drivers.python_archive``): ``--archives <archive>#environment``, with
``spark.pyspark.python`` and ``spark.pyspark.driver.python`` (and on YARN the application
master's ``PYSPARK_PYTHON``) at ``./environment/bin/python``, relative to the driver's working
folder where the cluster unpacks it. A context's own ``python.executable`` wins over it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driver.protocol import SECRETS_PATH_ENV
from jobserver.common.cluster_settings import ClusterSettings
from jobserver.common.values import flatten_keys, parse_bool, string_list

# spark-submit's options that take no value (also when a query parameter says "true").
SWITCHES = frozenset({"verbose", "supervise"})


def _package_dir(name: str) -> Path:
    # find_spec locates a package without importing it: the server never runs driver code.
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"package {name} is not installed")
    return Path(spec.origin).resolve().parent


DRIVER_SCRIPT = _package_dir("driver") / "__main__.py"

# Settings the server consumes itself; they never reach Spark's configuration.
_SERVER_ONLY_KEYS = frozenset(
    {
        "num-cpu-cores",
        "memory-per-node",
        "context-factory",
        "passthrough",
        "hadoop",
        "launcher",
        "stop-context-on-job-error",
        "dependent-jar-uris",
        "cp",
        "is-adhoc",
        "context",
        "pool",
        "streaming",
        "python",
        "forked-jvm-init-timeout",
        "context-init-timeout",
        "cluster",
    }
)


_EXECUTOR_PYTHONPATH = "spark.executorEnv.PYTHONPATH"

# Where a cluster unpacks the driver's Python environment (--archives <archive>#environment),
# relative to the driver's working folder, and its interpreter there.
ARCHIVE_ALIAS = "environment"
PYTHON_IN_ARCHIVE = f"./{ARCHIVE_ALIAS}/bin/python"


@dataclass(frozen=True, slots=True)
class DriverLaunch:
    """Everything needed to start one driver: what to run and the environment it needs."""

    spark_home: Path
    master: str
    deploy_mode: str
    python: str
    bus_endpoint: str
    bundle: Path
    # The cluster's (spark.jobserver.clusters): what its spark-submit needs in its environment,
    # Spark settings a context's own override, and a Kerberos login.
    env: Mapping[str, str] = field(default_factory=dict)
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    principal: str = ""
    keytab: str = ""
    # The driver's packed Python environment, shipped in cluster deploy mode (None: none).
    python_archive: Path | None = None


def for_cluster(launch: DriverLaunch, cluster: ClusterSettings) -> DriverLaunch:
    """``launch`` (the server's python, bus and driver bundle) on ``cluster``."""
    return dataclasses.replace(
        launch,
        spark_home=cluster.spark_home,
        master=cluster.master,
        deploy_mode=cluster.deploy_mode,
        env=cluster.env,
        spark_conf=cluster.spark_conf,
        principal=cluster.principal,
        keytab=cluster.keytab,
    )


@dataclass(frozen=True, slots=True)
class DriverCommand:
    argv: list[str]
    env: dict[str, str]


def build_driver_command(
    launch: DriverLaunch,
    *,
    context_id: str,
    context_name: str,
    context_config: Mapping[str, Any],
    secrets_file: Path,
    binary_jars: Mapping[str, Path] | None = None,
) -> DriverCommand:
    """``binary_jars``: the local file of each uploaded jar the context names (``context_binary_names``)."""
    spark_conf = {**launch.spark_conf, **spark_conf_for(context_config)}
    launcher = flatten_keys(context_config.get("launcher") or {})
    master, deploy_mode = submit_target(launch.master, launch.deploy_mode, context_config)
    launcher.pop("spark.master", None)
    launcher.pop("spark.submit.deployMode", None)
    proxy_user = context_config.get("spark.proxy.user") or _nested(context_config, "spark", "proxy", "user")
    spark_conf.pop("spark.proxy.user", None)
    python = str(_nested(context_config, "python", "executable") or "") or launch.python
    jars = context_jars(context_config, spark_conf.pop("spark.jars", ""), binary_jars or {})
    files: list[str] = []
    archives: list[str] = []
    if deploy_mode == "cluster":
        # The driver does not inherit spark-submit's environment, nor see the server's disk: its
        # secrets file travels with the context's own files (one --files: a second would win).
        files = [
            *string_list(launcher.pop("files", "")),
            *string_list(spark_conf.pop("spark.files", "")),
            str(secrets_file),
        ]
        if launch.python_archive is not None and ships_python_archive(launch, context_config):
            archives = [
                *string_list(launcher.pop("archives", "")),
                *string_list(spark_conf.pop("spark.archives", "")),
                f"{launch.python_archive}#{ARCHIVE_ALIAS}",
            ]
            python = PYTHON_IN_ARCHIVE
            spark_conf["spark.pyspark.driver.python"] = python
            if master.startswith("yarn"):  # as PySpark's guide does; the conf alone also works
                spark_conf["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] = python
    spark_conf["spark.pyspark.python"] = python
    options = _submit_options(launcher, spark_conf)
    argv = [
        str(launch.spark_home / "bin" / "spark-submit"),
        "--master",
        master,
        "--deploy-mode",
        deploy_mode,
        "--name",
        context_name,
    ]
    if proxy_user:
        argv += ["--proxy-user", str(proxy_user)]
    if launch.principal:  # Spark logs in from the keytab and renews the ticket itself
        argv += ["--principal", launch.principal, "--keytab", launch.keytab]
    argv += options
    if jars:
        argv += ["--jars", ",".join(jars)]
    if files:
        argv += ["--files", ",".join(files)]
    if archives:
        argv += ["--archives", ",".join(archives)]
    for key in sorted(spark_conf):
        argv += ["--conf", f"{key}={spark_conf[key]}"]
    argv += ["--py-files", str(launch.bundle), str(DRIVER_SCRIPT)]
    argv += ["--server", launch.bus_endpoint, "--context-id", context_id, "--context-name", context_name]
    argv += ["--secrets-file", secrets_file.name]  # its name is not secret; its content is
    env = {
        **launch.env,
        "SPARK_HOME": str(launch.spark_home),
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
    }
    if deploy_mode != "cluster":
        env[SECRETS_PATH_ENV] = str(secrets_file)
    return DriverCommand(argv=argv, env=env)


def ships_python_archive(launch: DriverLaunch, context_config: Mapping[str, Any]) -> bool:
    """Whether a context's driver takes the server's Python environment along: in cluster deploy
    mode, unless the context names an interpreter of its own (``python.executable``)."""
    _, deploy_mode = submit_target(launch.master, launch.deploy_mode, context_config)
    return deploy_mode == "cluster" and not _nested(context_config, "python", "executable")


def submit_target(master: str, deploy_mode: str, context_config: Mapping[str, Any]) -> tuple[str, str]:
    """The master and deploy mode a context's driver is submitted with: its cluster's, unless its
    ``launcher { spark.master, spark.submit.deployMode }`` say otherwise."""
    launcher = flatten_keys(context_config.get("launcher") or {})
    chosen_master = launcher.get("spark.master", master)
    return str(chosen_master), str(launcher.get("spark.submit.deployMode", deploy_mode))


def _submit_options(launcher: Mapping[str, Any], spark_conf: dict[str, str]) -> list[str]:
    """spark-submit's own options from ``launcher { … }``; its ``spark.*`` keys go to ``spark_conf``."""
    options: list[str] = []
    for key, value in launcher.items():
        if key.startswith("spark."):
            spark_conf[key] = _render(value)
        elif isinstance(value, bool) or key in SWITCHES:  # a switch takes no value: on or absent
            options += [f"--{key}"] if parse_bool(value) else []
        else:
            options += [f"--{key}", _render(value)]
    return options


def context_jars(
    context_config: Mapping[str, Any], spark_jars: str = "", binary_jars: Mapping[str, Path] | None = None
) -> list[str]:
    """The jars of the whole context, for ``--jars``: ``spark.jars``, then ``dependent-jar-uris``,
    then ``cp`` (each a list or a comma-separated string), each once, as Spark takes them (paths,
    ``file:``, ``local:``, ``http(s):``, ``hdfs:``, …); names of uploaded jars as their files in
    ``binary_jars``."""
    files = binary_jars or {}
    entries = [
        *string_list(spark_jars),
        *(str(files.get(entry, entry)) for entry in _own_jar_entries(context_config)),
    ]
    return list(dict.fromkeys(entries))


def context_binary_names(context_config: Mapping[str, Any]) -> list[str]:
    """The names of uploaded binaries among the context's own jars: entries without a ``/``
    (a path or a URI always has one; a binary's name never does)."""
    return list(dict.fromkeys(entry for entry in _own_jar_entries(context_config) if "/" not in entry))


def _own_jar_entries(context_config: Mapping[str, Any]) -> list[str]:
    return [
        *string_list(context_config.get("dependent-jar-uris")),
        *string_list(context_config.get("cp")),
    ]


HIVE_FACTORIES = frozenset(
    {"spark.jobserver.python.PythonHiveContextFactory", "spark.jobserver.context.HiveContextFactory"}
)


def hive_enabled(context_config: Mapping[str, Any]) -> bool:
    """A Hive context: a Hive factory, or ``spark.session.hive.enabled = true``."""
    flag = flatten_keys(context_config).get("spark.session.hive.enabled")
    return context_config.get("context-factory") in HIVE_FACTORIES or str(flag).lower() in (
        "true",
        "on",
        "yes",
    )


def spark_conf_for(context_config: Mapping[str, Any]) -> dict[str, str]:
    """The Spark configuration a context's settings ask for."""
    conf: dict[str, str] = {}
    if hive_enabled(context_config):
        # The Derby metastore and the warehouse land in the driver's working folder unless the
        # settings name a shared metastore (spark.hadoop.hive.metastore.uris, …).
        conf["spark.sql.catalogImplementation"] = "hive"
    if context_config.get("num-cpu-cores") not in (None, ""):
        conf["spark.cores.max"] = _render(context_config["num-cpu-cores"])
    if context_config.get("memory-per-node") not in (None, ""):
        conf["spark.executor.memory"] = _render(context_config["memory-per-node"])
    for key, value in flatten_keys(context_config).items():
        top = key.split(".", 1)[0]
        if top in _SERVER_ONLY_KEYS:
            continue
        if key.startswith("spark."):
            conf[key] = _render(value)
    for key, value in flatten_keys(context_config.get("passthrough") or {}).items():
        conf[key] = _render(value)
    for key, value in flatten_keys(context_config.get("hadoop") or {}).items():
        conf[f"spark.hadoop.{key}"] = _render(value)
    # python.paths: the executors' Python workers get them so (the driver puts them on its own
    # path when it starts, which works in cluster deploy mode too).
    python_paths = string_list(_nested(context_config, "python", "paths"))
    if python_paths:
        existing = conf.get(_EXECUTOR_PYTHONPATH)
        conf[_EXECUTOR_PYTHONPATH] = ":".join([*python_paths, *([existing] if existing else [])])
    return conf


def build_bundle(target: Path) -> Path:
    """Zip the driver and the sparkjobserver compatibility package for ``--py-files``.

    Drivers on other hosts (YARN cluster mode, Kubernetes) import our code from this zip; local
    drivers find the same code first on their own path.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in ("driver", "sparkjobserver"):
            root = _package_dir(package)
            # Jars too: the adapter for spark-jobserver's JVM job API (driver/jars, driver.jvm_api).
            for path in sorted([*root.rglob("*.py"), *root.rglob("*.jar")]):
                archive.write(path, str(Path(root.name) / path.relative_to(root)))
    temporary.replace(target)
    return target


def _nested(values: Mapping[str, Any], *path: str) -> Any:
    current: Any = values
    for part in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_render(item) for item in value)
    return str(value)
