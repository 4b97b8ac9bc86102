"""The spark-submit command line of a context's driver (contract §4.1), and the driver bundle."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import driver
import sparkjobserver
from driver.protocol import SECRETS_PATH_ENV, DriverSecrets
from jobserver.drivers import tokens
from jobserver.drivers.launcher import (
    DRIVER_SCRIPT,
    DriverCommand,
    DriverLaunch,
    build_bundle,
    build_driver_command,
    context_binary_names,
    context_jars,
    spark_conf_for,
)

SECRETS_FILE = Path("/var/jobserver/drivers/ctx-0001/driver-secrets-x1y2.json")
SPARK_HOME = Path("/opt/spark")
PYTHON = "/usr/bin/python3.11"
BUS = "tcp://gateway.example:41000"
BUNDLE = Path("/var/jobserver/driver-bundle.zip")


def launch(*, master: str = "local[*]", deploy_mode: str = "client") -> DriverLaunch:
    return DriverLaunch(
        spark_home=SPARK_HOME,
        master=master,
        deploy_mode=deploy_mode,
        python=PYTHON,
        bus_endpoint=BUS,
        bundle=BUNDLE,
    )


def command(
    context_config: Mapping[str, Any],
    *,
    name: str = "reporting",
    deploy_mode: str = "client",
    secrets_file: Path = SECRETS_FILE,
    binary_jars: Mapping[str, Path] | None = None,
) -> DriverCommand:
    return build_driver_command(
        launch(deploy_mode=deploy_mode),
        context_id="ctx-0001",
        context_name=name,
        context_config=context_config,
        secrets_file=secrets_file,
        binary_jars=binary_jars,
    )


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[index + 1] for index, item in enumerate(argv[:-1]) if item == option]


def confs(argv: list[str]) -> dict[str, str]:
    """The ``--conf key=value`` pairs given to spark-submit (before the driver script)."""
    head = argv[: argv.index(str(DRIVER_SCRIPT))]
    return dict(value.split("=", 1) for value in option_values(head, "--conf"))


# --- Spark configuration from context settings ---------------------------------------------------


def test_num_cpu_cores_becomes_spark_cores_max() -> None:
    assert spark_conf_for({"num-cpu-cores": 2}) == {"spark.cores.max": "2"}


def test_memory_per_node_becomes_spark_executor_memory() -> None:
    assert spark_conf_for({"memory-per-node": "2g"}) == {"spark.executor.memory": "2g"}


@pytest.mark.parametrize("empty", [None, ""])
def test_unset_cores_and_memory_set_nothing(empty: object) -> None:
    assert spark_conf_for({"num-cpu-cores": empty, "memory-per-node": empty}) == {}


def test_spark_keys_are_copied_verbatim_whether_dotted_or_nested() -> None:
    config = {"spark.ui.enabled": False, "spark": {"sql": {"shuffle": {"partitions": 2}}}}
    assert spark_conf_for(config) == {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"}


def test_explicit_spark_cores_max_wins_over_num_cpu_cores() -> None:
    assert spark_conf_for({"num-cpu-cores": 4, "spark.cores.max": 1})["spark.cores.max"] == "1"


def test_passthrough_keys_are_copied_verbatim() -> None:
    config = {"passthrough": {"es.nodes": "search:9200", "custom": {"flag": True}}}
    assert spark_conf_for(config) == {"es.nodes": "search:9200", "custom.flag": "true"}


def test_hadoop_keys_become_spark_hadoop_keys() -> None:
    config = {"hadoop": {"fs.s3a.endpoint": "s3.local", "fs": {"defaultFS": "hdfs://nn:8020"}}}
    assert spark_conf_for(config) == {
        "spark.hadoop.fs.s3a.endpoint": "s3.local",
        "spark.hadoop.fs.defaultFS": "hdfs://nn:8020",
    }


def test_list_values_are_joined_with_commas() -> None:
    assert spark_conf_for({"spark.jars": ["a.jar", "b.jar"]}) == {"spark.jars": "a.jar,b.jar"}


def test_keys_that_are_neither_spark_nor_mapped_do_not_reach_spark() -> None:
    assert spark_conf_for({"test": 1, "override_me": 3, "input": {"string": "a"}}) == {}


def test_launcher_keys_are_not_spark_configuration_of_the_context() -> None:
    assert spark_conf_for({"launcher": {"spark.driver.memory": "1g"}}) == {}


SERVER_ONLY_SETTINGS: dict[str, Any] = {
    "context-factory": "spark.jobserver.python.PythonSessionContextFactory",
    "stop-context-on-job-error": True,
    "is-adhoc": True,
    "dependent-jar-uris": ["file:///x.jar"],
    "cp": "app",
    "context": {"name": "reporting"},
    "streaming": {"batch_interval": 1000},
    "python": {"paths": [], "executable": ""},
    "forked-jvm-init-timeout": "30s",
    "context-init-timeout": "60s",
}


@pytest.mark.parametrize("key", sorted(SERVER_ONLY_SETTINGS))
def test_server_only_setting_never_reaches_the_spark_configuration(key: str) -> None:
    config = {key: SERVER_ONLY_SETTINGS[key], "spark.app.flag": "kept"}
    argv = command(config).argv
    assert spark_conf_for(config) == {"spark.app.flag": "kept"}
    assert confs(argv) == {"spark.app.flag": "kept", "spark.pyspark.python": PYTHON}
    assert f"--{key}" not in argv


def test_python_executable_runs_the_driver_and_the_executors() -> None:
    built = command({"python": {"executable": "/opt/py/bin/python", "paths": []}})
    assert confs(built.argv)["spark.pyspark.python"] == "/opt/py/bin/python"
    assert built.env["PYSPARK_PYTHON"] == built.env["PYSPARK_DRIVER_PYTHON"] == "/opt/py/bin/python"


def test_no_python_executable_means_the_servers_driver_python() -> None:
    built = command({"python": {"executable": ""}})
    assert confs(built.argv)["spark.pyspark.python"] == PYTHON
    assert built.env["PYSPARK_DRIVER_PYTHON"] == PYTHON


def test_python_paths_reach_the_executors_python_workers_before_an_operators_own() -> None:
    config = {"python": {"paths": ["/srv/a", "/srv/b"]}, "spark.executorEnv.PYTHONPATH": "/srv/site"}
    assert spark_conf_for(config) == {"spark.executorEnv.PYTHONPATH": "/srv/a:/srv/b:/srv/site"}


# --- the spark-submit command line --------------------------------------------------------------


def test_command_runs_spark_submit_of_the_configured_spark_home() -> None:
    assert command({}).argv[0] == str(SPARK_HOME / "bin" / "spark-submit")


def test_command_uses_the_server_master_and_deploy_mode() -> None:
    argv = command({}).argv
    assert option_values(argv, "--master") == ["local[*]"]
    assert option_values(argv, "--deploy-mode") == ["client"]


def test_launcher_spark_master_overrides_the_server_master() -> None:
    argv = command({"launcher": {"spark": {"master": "yarn"}}}).argv
    assert option_values(argv, "--master") == ["yarn"]
    assert "spark.master" not in confs(argv)


def test_launcher_deploy_mode_overrides_the_server_deploy_mode() -> None:
    argv = command({"launcher": {"spark.submit.deployMode": "cluster"}}).argv
    assert option_values(argv, "--deploy-mode") == ["cluster"]
    assert "spark.submit.deployMode" not in confs(argv)


def test_name_is_the_context_name() -> None:
    assert option_values(command({}, name="sales-daily").argv, "--name") == ["sales-daily"]


def test_context_settings_reach_spark_submit_as_conf() -> None:
    argv = command(
        {
            "num-cpu-cores": 2,
            "memory-per-node": "1g",
            "spark.ui.enabled": False,
            "passthrough": {"es.nodes": "search"},
            "hadoop": {"fs.s3a.endpoint": "s3.local"},
        }
    ).argv
    assert confs(argv) == {
        "spark.cores.max": "2",
        "spark.executor.memory": "1g",
        "spark.ui.enabled": "false",
        "es.nodes": "search",
        "spark.hadoop.fs.s3a.endpoint": "s3.local",
        "spark.pyspark.python": PYTHON,
    }


def test_launcher_spark_keys_become_conf() -> None:
    argv = command({"launcher": {"spark": {"driver": {"memory": "2g"}}, "spark.driver.cores": 2}}).argv
    assert confs(argv)["spark.driver.memory"] == "2g"
    assert confs(argv)["spark.driver.cores"] == "2"


def test_launcher_other_keys_become_spark_submit_options() -> None:
    argv = command({"launcher": {"queue": "etl", "num-executors": 3}}).argv
    assert option_values(argv, "--queue") == ["etl"]
    assert option_values(argv, "--num-executors") == ["3"]


def test_driver_python_is_the_launch_python() -> None:
    assert confs(command({}).argv)["spark.pyspark.python"] == PYTHON


def test_proxy_user_from_a_dotted_key_becomes_proxy_user_option() -> None:
    argv = command({"spark.proxy.user": "alice"}).argv
    assert option_values(argv, "--proxy-user") == ["alice"]
    assert "spark.proxy.user" not in confs(argv)


def test_proxy_user_from_a_nested_key_becomes_proxy_user_option() -> None:
    argv = command({"spark": {"proxy": {"user": "bob"}}}).argv
    assert option_values(argv, "--proxy-user") == ["bob"]
    assert "spark.proxy.user" not in confs(argv)


def test_no_proxy_user_option_without_a_proxy_user() -> None:
    assert "--proxy-user" not in command({}).argv


def test_driver_script_and_its_arguments_come_last() -> None:
    argv = command({"launcher": {"queue": "etl"}, "num-cpu-cores": 1}, name="reporting").argv
    assert argv[-11:] == [
        "--py-files",
        str(BUNDLE),
        str(DRIVER_SCRIPT),
        "--server",
        BUS,
        "--context-id",
        "ctx-0001",
        "--context-name",
        "reporting",
        "--secrets-file",
        SECRETS_FILE.name,
    ]


def test_driver_script_is_the_driver_package_main() -> None:
    assert Path(driver.__file__).resolve().parent / "__main__.py" == DRIVER_SCRIPT


def test_same_settings_give_the_same_command() -> None:
    config = {"spark.b": 1, "spark.a": 2, "hadoop": {"z": 1, "y": 2}, "launcher": {"spark.c": 3}}
    assert command(config) == command(dict(reversed(list(config.items()))))


SETTINGS_WITH_FILES = {"num-cpu-cores": 1, "launcher": {"queue": "etl", "files": "/etc/app/lookup.csv"}}


@pytest.mark.parametrize("deploy_mode", ["client", "cluster"])
def test_no_secret_is_on_the_command_line_and_the_secrets_file_is_private(
    tmp_path: Path, deploy_mode: str
) -> None:
    key = tokens.load_key(tmp_path / tokens.KEY_FILE)
    driver_keys = tokens.curve_context_keys(key, "ctx-0001")
    secrets = DriverSecrets(
        token=tokens.issue(key, "ctx-0001"),
        server_public_key=tokens.curve_server_keys(key).public.decode(),
        public_key=driver_keys.public.decode(),
        secret_key=driver_keys.secret.decode(),
    )
    path = tokens.write_secrets_file(tmp_path / "drivers" / "ctx-0001", secrets)
    assert path.stat().st_mode & 0o777 == 0o600
    assert DriverSecrets.from_json(path.read_text()) == secrets
    result = command(SETTINGS_WITH_FILES, deploy_mode=deploy_mode, secrets_file=path)
    exposed = [*result.argv, *confs(result.argv).values(), *result.env.values()]
    server_secret = tokens.curve_server_keys(key).secret.decode()
    for secret in (secrets.token, secrets.secret_key, server_secret, key.hex()):
        assert not any(secret in item for item in exposed)
    assert option_values(result.argv, "--secrets-file") == [path.name]


def test_client_mode_gives_the_driver_the_secrets_file_path_in_its_environment() -> None:
    assert command({}).env == {
        "SPARK_HOME": str(SPARK_HOME),
        "PYSPARK_PYTHON": PYTHON,
        "PYSPARK_DRIVER_PYTHON": PYTHON,
        SECRETS_PATH_ENV: str(SECRETS_FILE),
    }
    assert "--files" not in command({}).argv


def test_cluster_mode_ships_the_secrets_file_with_the_contexts_own_files() -> None:
    for settings in (
        {"launcher": {"files": "/etc/app/lookup.csv"}, "spark.files": "/etc/app/more.txt"},
        {"launcher": {"files": "/etc/app/lookup.csv", "spark.submit.deployMode": "cluster"}},
    ):
        result = command(settings, deploy_mode="cluster")
        files = option_values(result.argv, "--files")
        assert len(files) == 1 and files[0].split(",")[0] == "/etc/app/lookup.csv"
        assert files[0].split(",")[-1] == str(SECRETS_FILE)
        assert "spark.files" not in confs(result.argv)
        assert SECRETS_PATH_ENV not in result.env  # a remote driver does not inherit it
        assert not any("JOBSERVER_DRIVER" in item for item in result.argv)


def test_default_context_settings_give_the_contract_spark_settings() -> None:
    defaults = {
        "num-cpu-cores": 4,
        "memory-per-node": "512m",
        "context-factory": "spark.jobserver.python.PythonSessionContextFactory",
        "dependent-jar-uris": [],
        "streaming": {"batch_interval": 1000, "stopGracefully": True, "stopSparkContext": True},
        "passthrough": {},
        "hadoop": {},
        "launcher": {"spark": {"driver": {"memory": "1g"}}},
    }
    argv = command(defaults).argv
    assert confs(argv) == {
        "spark.cores.max": "4",
        "spark.executor.memory": "512m",
        "spark.driver.memory": "1g",
        "spark.pyspark.python": PYTHON,
    }
    assert "--jars" not in argv


@pytest.mark.parametrize(("on", "off"), [(True, False), ("true", "false")], ids=["booleans", "strings"])
def test_a_switch_becomes_a_bare_flag_or_nothing(on: object, off: object) -> None:
    argv = command({"launcher": {"verbose": on, "supervise": off}}).argv
    assert "--verbose" in argv
    assert argv[argv.index("--verbose") + 1].startswith("--")
    assert "--supervise" not in argv


# --- the context's own jars ----------------------------------------------------------------------


def test_context_jars_become_spark_submit_jars_in_order() -> None:
    config = {
        "dependent-jar-uris": ["/opt/libs/a.jar", "file:///opt/libs/b.jar", "local:///opt/libs/c.jar"],
        "cp": "hdfs://nn:8020/jars/d.jar, https://repo.example/e.jar",
    }
    argv = command(config).argv
    assert option_values(argv, "--jars") == [
        "/opt/libs/a.jar,file:///opt/libs/b.jar,local:///opt/libs/c.jar,"
        "hdfs://nn:8020/jars/d.jar,https://repo.example/e.jar"
    ]
    assert argv.index("--jars") < argv.index(str(DRIVER_SCRIPT))


def test_context_jars_as_a_comma_separated_string_are_split_and_named_once() -> None:
    config = {"dependent-jar-uris": "/a.jar, /b.jar,,/a.jar", "cp": ["/b.jar"]}
    assert option_values(command(config).argv, "--jars") == ["/a.jar,/b.jar"]


def test_spark_jars_of_the_settings_join_the_context_jars_instead_of_being_overridden() -> None:
    argv = command({"spark.jars": "/first.jar", "dependent-jar-uris": ["/second.jar"]}).argv
    assert option_values(argv, "--jars") == ["/first.jar,/second.jar"]
    assert "spark.jars" not in confs(argv)


def test_context_jars_helper_keeps_the_contract_order() -> None:
    config = {"cp": ["/c.jar"], "dependent-jar-uris": ["/d.jar"]}
    assert context_jars(config, "/s.jar") == ["/s.jar", "/d.jar", "/c.jar"]


def test_names_of_uploaded_jars_are_the_entries_without_a_slash() -> None:
    config = {
        "dependent-jar-uris": "udfs, /opt/a.jar, file:///b.jar, hdfs://nn/c.jar",
        "cp": ["jdbc", "udfs"],
    }
    assert context_binary_names(config) == ["udfs", "jdbc"]
    assert context_binary_names({"dependent-jar-uris": []}) == []


@pytest.mark.parametrize("deploy_mode", ["client", "cluster"])
def test_uploaded_jars_of_a_context_go_to_spark_submit_as_the_servers_files(deploy_mode: str) -> None:
    # spark-submit ships local --jars to a driver on another host itself (cluster deploy mode).
    files = {"udfs": Path("/work/drivers/ctx-0001/jars/ab12.jar")}
    config = {"dependent-jar-uris": ["udfs", "/opt/a.jar"], "cp": "udfs"}
    argv = command(config, deploy_mode=deploy_mode, binary_jars=files).argv
    assert option_values(argv, "--jars") == ["/work/drivers/ctx-0001/jars/ab12.jar,/opt/a.jar"]


# --- the bundle shipped with --py-files -----------------------------------------------------------


def python_files_of(package_dir: Path) -> set[str]:
    return {str(Path(package_dir.name) / path.relative_to(package_dir)) for path in package_dir.rglob("*.py")}


def test_bundle_holds_the_driver_and_compatibility_packages(tmp_path: Path) -> None:
    target = build_bundle(tmp_path / "work" / "driver-bundle.zip")
    assert target == tmp_path / "work" / "driver-bundle.zip"
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        assert (
            archive.read("driver/protocol.py") == (Path(driver.__file__).parent / "protocol.py").read_bytes()
        )
    assert {"driver/__init__.py", "driver/__main__.py", "driver/protocol.py"} <= names
    assert {"sparkjobserver/__init__.py", "sparkjobserver/api.py"} <= names
    driver_dir = Path(driver.__file__).resolve().parent
    compat_dir = Path(sparkjobserver.__file__).resolve().parent
    adapter_jars = {f"driver/jars/{jar.name}" for jar in (driver_dir / "jars").glob("*.jar")}
    assert names == python_files_of(driver_dir) | python_files_of(compat_dir) | adapter_jars


def test_bundle_holds_only_python_sources_and_the_jvm_api_adapter_jars(tmp_path: Path) -> None:
    with zipfile.ZipFile(build_bundle(tmp_path / "bundle.zip")) as archive:
        names = archive.namelist()
    assert all(name.endswith(".py") or name.startswith("driver/jars/") for name in names)
    assert all(name.endswith(".jar") for name in names if name.startswith("driver/jars/"))
    assert all(name.split("/", 1)[0] in ("driver", "sparkjobserver") for name in names)
    assert not any("__pycache__" in name for name in names)


def test_rebuilding_the_bundle_replaces_it_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "bundle.zip"
    target.write_bytes(b"stale")
    build_bundle(target)
    assert zipfile.is_zipfile(target)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bundle.zip"]
