"""Reading configuration: defaults, a config file layered over them, overrides, request bodies."""

from __future__ import annotations

import dataclasses
import datetime
import sys
from pathlib import Path

import pytest
from pyhocon import ConfigFactory

from jobserver.common.bodies import BodyParseError, parse_body
from jobserver.common.config import (
    Settings,
    expand_dotted,
    for_drivers,
    get_path,
    load_settings,
    merge,
    redacted_url,
    to_plain,
)
from jobserver.common.context_settings import start_deadlines
from jobserver.common.errors import ConfigError
from jobserver.common.values import parse_duration_s, parse_size_bytes, plain_duration

MIB = 1024**2


@pytest.fixture
def in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder with SPARK_HOME pointing into it, so relative paths land there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPARK_HOME", str(tmp_path / "spark-home"))
    return tmp_path


@pytest.fixture(scope="module")
def defaults_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("defaults")


@pytest.fixture(scope="module")
def defaults(defaults_folder: Path) -> Settings:
    """The settings from conf/defaults.conf alone, read once in ``defaults_folder`` (pyhocon takes
    about 0.1 s per read)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(defaults_folder)
        monkeypatch.setenv("SPARK_HOME", str(defaults_folder / "spark-home"))
        return load_settings()


def write_config(folder: Path, text: str) -> Path:
    path = folder / "server.conf"
    path.write_text(text)
    return path


# --- defaults ------------------------------------------------------------------------------------


def test_default_http_port_is_8090(defaults: Settings) -> None:
    assert defaults.port == 8090
    assert defaults.bind_address == "0.0.0.0"


def test_default_master_runs_spark_locally_in_client_mode(defaults: Settings) -> None:
    assert defaults.master == "local[*]"
    assert defaults.deploy_mode == "client"


def test_default_allows_eight_jobs_per_context(defaults: Settings) -> None:
    assert defaults.max_jobs_per_context == 8


def test_default_store_is_sqlite_under_the_work_dir(defaults: Settings, defaults_folder: Path) -> None:
    assert defaults.work_dir == defaults_folder / "jobserver-work"
    assert defaults.store_url == f"sqlite:///{defaults_folder / 'jobserver-work' / 'metadata.db'}"


def test_state_folders_live_under_the_work_dir(defaults: Settings) -> None:
    assert defaults.data_dir == defaults.work_dir / "data"
    assert defaults.blob_dir == defaults.work_dir / "binaries"
    assert defaults.log_dir == defaults.work_dir / "logs"


def test_default_bus_binds_loopback_on_a_free_port_and_advertises_it(defaults: Settings) -> None:
    assert defaults.bus_port == 0
    assert defaults.bus_bind_address == "127.0.0.1"
    assert defaults.bus_advertised_host == "127.0.0.1"
    assert defaults.bus_curve is True


def test_the_bus_can_be_made_plaintext() -> None:
    assert load_settings(None, {"spark.jobserver.bus.curve": "off"}).bus_curve is False


def test_default_durations_are_read_as_seconds(defaults: Settings) -> None:
    assert defaults.context_creation_timeout_s == 90.0
    assert defaults.context_deletion_timeout_s == 15.0
    assert defaults.default_sync_timeout_s == 10.0
    assert defaults.heartbeat_interval_s == 1.0
    assert defaults.heartbeat_timeout_s == 10.0
    assert defaults.driver_server_silence_grace_s == 120.0
    assert defaults.reattach_grace_s == 20.0
    assert (defaults.supervise, defaults.supervise_max_restarts) == (False, 3)
    assert (defaults.supervise_backoff_s, defaults.supervise_max_backoff_s) == (1.0, 30.0)


def test_default_sizes_are_read_as_bytes(defaults: Settings) -> None:
    assert defaults.max_upload_bytes == 30 * MIB
    assert defaults.result_chunk_bytes == 1 * MIB


def test_default_driver_python_is_the_server_interpreter(defaults: Settings) -> None:
    assert defaults.driver_python == sys.executable


def test_default_context_settings_follow_the_contract(defaults: Settings) -> None:
    context = defaults.context_defaults
    assert context["num-cpu-cores"] == 4
    assert context["memory-per-node"] == "512m"
    assert context["context-factory"] == "spark.jobserver.python.PythonSessionContextFactory"
    assert "stop-context-on-job-error" not in context  # unset: false, true for streaming contexts
    assert context["dependent-jar-uris"] == []
    assert context["streaming"] == {"batch_interval": 1000, "stopGracefully": True, "stopSparkContext": True}
    assert get_path(context, "launcher.spark.driver.memory") == "1g"


def test_no_contexts_start_by_default(defaults: Settings) -> None:
    assert defaults.startup_contexts == {}


def test_plain_settings_hold_the_whole_configuration(defaults: Settings) -> None:
    plain = defaults.plain
    assert get_path(plain, "spark.jobserver.port") == 8090
    assert get_path(plain, "spark.context-settings.num-cpu-cores") == 4


def test_spark_home_comes_from_the_environment_when_not_configured(
    defaults: Settings, defaults_folder: Path
) -> None:
    assert defaults.spark_home == defaults_folder / "spark-home"


def test_spark_home_falls_back_to_the_spark_bundled_with_pyspark(
    in_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARK_HOME")
    spark_home = load_settings().spark_home
    assert spark_home.name == "pyspark"
    assert (spark_home / "__init__.py").is_file()


def test_settings_are_frozen(defaults: Settings) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.port = 1  # type: ignore[misc]


# --- config file and overrides -------------------------------------------------------------------


def test_config_file_is_layered_over_the_defaults(in_tmp_dir: Path) -> None:
    config = write_config(
        in_tmp_dir,
        """
        spark {
          master = "spark://master:7077"
          jobserver {
            port = 9999
            heartbeat.interval = 500ms
          }
          context-settings {
            num-cpu-cores = 2
            launcher { spark.driver.cores = 2 }
          }
        }
        """,
    )
    settings = load_settings(config)
    assert settings.master == "spark://master:7077"
    assert settings.port == 9999
    assert settings.heartbeat_interval_s == 0.5
    # Keys the file does not mention keep their defaults, also inside objects it does mention.
    assert settings.heartbeat_timeout_s == 10.0
    assert settings.max_jobs_per_context == 8
    assert settings.context_defaults["num-cpu-cores"] == 2
    assert settings.context_defaults["memory-per-node"] == "512m"
    assert get_path(settings.context_defaults, "launcher.spark.driver.memory") == "1g"
    assert get_path(settings.context_defaults, "launcher.spark.driver.cores") == 2


def test_config_file_accepts_a_string_path(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, "spark.jobserver.port = 8123\n")
    assert load_settings(str(config)).port == 8123


def test_work_dir_from_the_config_file_moves_the_default_store(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, 'spark.jobserver.work-dir = "state"\n')
    settings = load_settings(config)
    assert settings.work_dir == in_tmp_dir / "state"
    assert settings.store_url == f"sqlite:///{in_tmp_dir / 'state' / 'metadata.db'}"


def test_configured_store_url_is_kept(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, 'spark.jobserver.store.url = "postgresql://db.example/jobs"\n')
    assert load_settings(config).store_url == "postgresql://db.example/jobs"


def test_configured_spark_home_wins_over_the_environment(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, 'spark.home = "/opt/spark"\n')
    assert load_settings(config).spark_home == Path("/opt/spark")


def test_configured_advertised_host_is_kept(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, 'spark.jobserver.bus.advertised-host = "gateway.example"\n')
    assert load_settings(config).bus_advertised_host == "gateway.example"


def test_contexts_declared_in_the_config_file_start_at_boot(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, "spark.contexts { reporting { num-cpu-cores = 2 } }\n")
    assert load_settings(config).startup_contexts == {"reporting": {"num-cpu-cores": 2}}


def test_unquoted_upload_size_in_the_config_file_reads_as_bytes_not_minutes(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, "spark.jobserver.max-upload-size = 64m\n")
    assert load_settings(config).max_upload_bytes == 64 * MIB


def test_overrides_win_over_the_config_file(in_tmp_dir: Path) -> None:
    config = write_config(
        in_tmp_dir, "spark.jobserver.port = 9999\nspark.jobserver.max-jobs-per-context = 3\n"
    )
    settings = load_settings(
        config, overrides={"spark.jobserver.port": 9100, "spark.context-settings.num-cpu-cores": 1}
    )
    assert settings.port == 9100
    assert settings.max_jobs_per_context == 3
    assert settings.context_defaults["num-cpu-cores"] == 1
    assert settings.context_defaults["memory-per-node"] == "512m"


def test_overrides_apply_without_a_config_file(in_tmp_dir: Path) -> None:
    settings = load_settings(
        overrides={"spark.master": "local[2]", "spark.jobserver.heartbeat.timeout": "3s"}
    )
    assert settings.master == "local[2]"
    assert settings.heartbeat_timeout_s == 3.0


def test_missing_config_file_is_a_config_error(in_tmp_dir: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(in_tmp_dir / "nowhere.conf")


def test_config_folder_instead_of_a_file_is_a_config_error(in_tmp_dir: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(in_tmp_dir)


def test_unresolved_substitution_in_the_config_file_is_a_config_error(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, "spark.master = ${undefined-master}\n")
    with pytest.raises(ConfigError, match="cannot parse configuration"):
        load_settings(config)


@pytest.mark.parametrize(
    "text",
    ["spark {\n  jobserver { port = 9000\n", "spark.jobserver.port = 9000\n}}\n"],
    ids=["unclosed-object", "stray-brace"],
)
def test_malformed_hocon_config_file_is_a_config_error(in_tmp_dir: Path, text: str) -> None:
    config = write_config(in_tmp_dir, text)
    with pytest.raises(ConfigError):
        load_settings(config)


def test_port_that_is_not_a_number_is_a_config_error(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, 'spark.jobserver.port = "http"\n')
    with pytest.raises(ConfigError, match="port must be a whole number"):
        load_settings(config)


def test_duration_that_is_not_a_duration_is_a_config_error(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, 'spark.jobserver.heartbeat.interval = "soon"\n')
    with pytest.raises(ConfigError, match="not a duration"):
        load_settings(config)


def test_size_that_is_not_a_size_is_a_config_error(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, 'spark.jobserver.max-upload-size = "huge"\n')
    with pytest.raises(ConfigError, match="not a size"):
        load_settings(config)


def test_contexts_that_are_not_an_object_are_a_config_error(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, "spark.contexts = [a, b]\n")
    with pytest.raises(ConfigError, match=r"spark\.contexts"):
        load_settings(config)


# --- request bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n"], ids=["empty", "spaces", "newlines"])
async def test_empty_body_is_an_empty_config(text: str) -> None:
    assert await parse_body(text) == {}


async def test_json_object_body_is_read_as_json() -> None:
    body = '{"input": {"strings": ["a", "b"]}, "n": 1.5, "flag": true, "nothing": null}'
    assert await parse_body(body) == {
        "input": {"strings": ["a", "b"]},
        "n": 1.5,
        "flag": True,
        "nothing": None,
    }


async def test_json_dotted_key_is_expanded_into_nested_objects() -> None:
    assert await parse_body('{"input.string": "a"}') == {"input": {"string": "a"}}


async def test_json_dotted_keys_merge_with_an_object_of_the_same_name() -> None:
    assert await parse_body('{"a.b": 1, "a": {"c": 2}}') == {"a": {"b": 1, "c": 2}}
    assert await parse_body('{"a": {"c": 2}, "a.b": 1}') == {"a": {"c": 2, "b": 1}}


async def test_json_dotted_keys_inside_nested_objects_are_expanded() -> None:
    body = '{"spark.context-settings": {"launcher.spark.driver.memory": "2g"}}'
    assert await parse_body(body) == {
        "spark": {"context-settings": {"launcher": {"spark": {"driver": {"memory": "2g"}}}}}
    }


async def test_later_json_key_wins_like_in_hocon() -> None:
    assert await parse_body('{"a.b": 1, "a": 5}') == {"a": 5}
    assert await parse_body('{"a": 5, "a.b": 1}') == {"a": {"b": 1}}


def test_expand_dotted_leaves_plain_keys_alone() -> None:
    assert expand_dotted({"a": 1, "b": {"c": [1, 2]}}) == {"a": 1, "b": {"c": [1, 2]}}


async def test_hocon_body_is_read_as_hocon() -> None:
    assert await parse_body('input.strings = ["a", "b"]') == {"input": {"strings": ["a", "b"]}}


async def test_hocon_body_with_comments_and_objects_is_read() -> None:
    body = """
    # a comment
    spark.context-settings {
      num-cpu-cores = 2   // another comment
      passthrough { my.key = value }
    }
    """
    assert await parse_body(body) == {
        "spark": {"context-settings": {"num-cpu-cores": 2, "passthrough": {"my": {"key": "value"}}}}
    }


async def test_unquoted_memory_size_in_a_hocon_body_stays_the_text_the_user_wrote() -> None:
    assert await parse_body("memory-per-node = 512m") == {"memory-per-node": "512m"}


@pytest.mark.parametrize(
    "text",
    ['{"input.string": "a"}  # the job input', '{"input.string": "a",}'],
    ids=["comment", "trailing-comma"],
)
async def test_json_like_hocon_body_reads_like_the_same_strict_json(text: str) -> None:
    assert await parse_body(text) == await parse_body('{"input.string": "a"}')


@pytest.mark.parametrize(
    "text",
    ["{", "a = [", '{"a": ', "}", "a b c", "[1, 2]"],
    ids=["open-brace", "open-list", "broken-json", "close-brace", "no-separator", "list"],
)
async def test_malformed_body_is_a_body_parse_error(text: str) -> None:
    with pytest.raises(BodyParseError) as raised:
        await parse_body(text)
    assert "\n" not in str(raised.value)


# --- durations and sizes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10s", 10.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("72h", 259_200.0),
        ("1d", 86_400.0),
        ("2.5s", 2.5),
        (" 10 S ", 10.0),
        ("7", 7.0),
        (7, 7.0),
        (1.5, 1.5),
        (datetime.timedelta(minutes=1, milliseconds=250), 60.25),
    ],
)
def test_duration_is_read_as_seconds(value: object, seconds: float) -> None:
    assert parse_duration_s(value) == seconds


@pytest.mark.parametrize("value", ["soon", "", "10 weeks", "-1s", True])
def test_text_that_is_not_a_duration_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration_s(value)


@pytest.mark.parametrize(
    ("value", "size_bytes"),
    [
        ("30m", 30 * MIB),
        ("512k", 512 * 1024),
        ("1g", 1024**3),
        ("2t", 2 * 1024**4),
        ("10mb", 10 * MIB),
        ("1G", 1024**3),
        ("100", 100),
        ("100b", 100),
        (4096, 4096),
    ],
)
def test_size_is_read_as_bytes(value: object, size_bytes: int) -> None:
    assert parse_size_bytes(value) == size_bytes


@pytest.mark.parametrize("value", ["lots", "1.5g", "-1", "", True, 1.5])
def test_text_that_is_not_a_size_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_size_bytes(value)


def test_unquoted_memory_size_reads_as_bytes_not_minutes() -> None:
    tree = ConfigFactory.parse_string("memory-per-node = 512m")
    # pyhocon reads an unquoted 512m as a duration of 512 minutes (a relativedelta once
    # python-dateutil, which croniter needs, is installed) ...
    assert plain_duration(tree["memory-per-node"]) == datetime.timedelta(minutes=512)
    # ... and both ways out give back 512 MiB.
    assert parse_size_bytes(tree["memory-per-node"]) == 512 * MIB
    assert to_plain(tree) == {"memory-per-node": "512m"}
    assert parse_size_bytes(to_plain(tree)["memory-per-node"]) == 512 * MIB


@pytest.mark.parametrize("text", ["60m", "1440m"])
def test_unquoted_size_of_whole_hours_of_minutes_still_reads_as_megabytes(text: str) -> None:
    tree = ConfigFactory.parse_string(f"size = {text}")
    assert to_plain(tree) == {"size": text}
    assert parse_size_bytes(tree["size"]) == int(text[:-1]) * MIB


# --- plain values, merging, paths ----------------------------------------------------------------


def test_config_tree_becomes_plain_dicts_lists_and_scalars() -> None:
    tree = ConfigFactory.parse_string(
        """
        a { b = 1, c = [x, {d = true}] }
        nothing = null
        wait = 500ms
        pause = 90s
        """
    )
    plain = to_plain(tree)
    assert plain == {
        "a": {"b": 1, "c": ["x", {"d": True}]},
        "nothing": None,
        "wait": "500ms",
        "pause": "90s",
    }
    assert type(plain) is dict
    assert type(plain["a"]) is dict


def test_plain_durations_read_back_as_the_same_seconds() -> None:
    tree = ConfigFactory.parse_string("a = 60s\nb = 72h\nc = 250ms")
    plain = to_plain(tree)
    for key in ("a", "b", "c"):
        assert parse_duration_s(plain[key]) == parse_duration_s(tree[key])


def test_merge_combines_nested_objects_key_by_key() -> None:
    base = {"spark": {"master": "local", "jobserver": {"port": 8090, "bind": "0.0.0.0"}}, "x": 1}
    override = {"spark": {"jobserver": {"port": 9000}}, "y": 2}
    assert merge(base, override) == {
        "spark": {"master": "local", "jobserver": {"port": 9000, "bind": "0.0.0.0"}},
        "x": 1,
        "y": 2,
    }


def test_merge_replaces_whatever_is_not_an_object_on_both_sides() -> None:
    assert merge({"a": {"b": 1}}, {"a": 3}) == {"a": 3}
    assert merge({"a": 3}, {"a": {"b": 1}}) == {"a": {"b": 1}}
    assert merge({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge({"a": 1}, {"a": None}) == {"a": None}


def test_merge_leaves_its_inputs_unchanged() -> None:
    base = {"a": {"b": 1}}
    override = {"a": {"c": 2}}
    merge(base, override)
    assert base == {"a": {"b": 1}}
    assert override == {"a": {"c": 2}}


def test_get_path_follows_dotted_keys() -> None:
    values = {"spark": {"jobserver": {"port": 8090}, "empty": None}}
    assert get_path(values, "spark.jobserver.port") == 8090
    assert get_path(values, "spark.jobserver") == {"port": 8090}
    assert get_path(values, "spark.empty", "fallback") is None


def test_get_path_gives_the_default_for_a_missing_path() -> None:
    values = {"spark": {"jobserver": {"port": 8090}}}
    assert get_path(values, "spark.master") is None
    assert get_path(values, "spark.master", "local[*]") == "local[*]"
    assert get_path(values, "spark.jobserver.port.number", "none") == "none"
    assert get_path(values, "other.key", 0) == 0


# --- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://jobs:s3cret@db:5432/jobserver", "postgresql://jobs:***@db:5432/jobserver"),
        (
            "postgresql://db/jobserver?user=jobs&password=s3cret&pool_min_size=1",
            "postgresql://db/jobserver?user=jobs&password=***&pool_min_size=1",
        ),
        ("postgresql://jobs@db/jobserver?sslpassword=x", "postgresql://jobs@db/jobserver?sslpassword=***"),
        ("sqlite:///var/lib/jobserver/metadata.db", "sqlite:///var/lib/jobserver/metadata.db"),
    ],
)
def test_urls_are_shown_without_their_secrets(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_drivers_get_the_config_without_the_stores_section_or_secret_keys() -> None:
    plain = {
        "spark": {
            "master": "local[2]",
            "jobserver": {"port": 8090, "store": {"url": "postgresql://u:p@db/x"}, "ldap-password": "p"},
        },
        "input": {"api-token": "t", "n": 1},
    }
    assert for_drivers(plain) == {
        "spark": {"master": "local[2]", "jobserver": {"port": 8090}},
        "input": {"n": 1},
    }
    assert plain["spark"]["jobserver"]["store"] == {"url": "postgresql://u:p@db/x"}  # untouched


# --- spark-jobserver's settings: context-per-jvm, mem-per-node, factories, start deadlines ------


def test_context_per_jvm_false_is_refused_saying_there_is_one_driver_per_context(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, "spark.jobserver.context-per-jvm = false\n")
    with pytest.raises(ConfigError, match="always runs one driver process per context"):
        load_settings(config)


@pytest.mark.parametrize(
    "text", ["spark.jobserver.context-per-jvm = true\n", "spark.jobserver.port = 8090\n"]
)
def test_context_per_jvm_true_or_absent_is_fine(in_tmp_dir: Path, text: str) -> None:
    assert load_settings(write_config(in_tmp_dir, text)).port == 8090


def test_mem_per_node_in_the_config_file_overrides_the_defaults_memory_per_node(in_tmp_dir: Path) -> None:
    config = write_config(
        in_tmp_dir,
        "spark.context-settings.mem-per-node = 2g\nspark.contexts { reporting { mem-per-node = 3g } }\n",
    )
    settings = load_settings(config)
    assert settings.context_defaults["memory-per-node"] == "2g"
    assert "mem-per-node" not in settings.context_defaults
    assert settings.startup_contexts == {"reporting": {"memory-per-node": "3g"}}


def test_mem_per_node_in_overrides_is_memory_per_node(in_tmp_dir: Path) -> None:
    settings = load_settings(overrides={"spark.context-settings.mem-per-node": "768m"})
    assert settings.context_defaults["memory-per-node"] == "768m"
    assert "mem-per-node" not in settings.context_defaults


def test_mem_per_node_differing_from_memory_per_node_in_one_file_is_a_config_error(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, "spark.context-settings { mem-per-node = 2g, memory-per-node = 1g }\n")
    with pytest.raises(ConfigError, match=r"spark\.context-settings: mem-per-node .* differ"):
        load_settings(config)


def test_an_unknown_factory_in_the_defaults_is_a_config_error(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, 'spark.context-settings.context-factory = "com.example.Nope"\n')
    with pytest.raises(
        ConfigError, match=r"spark\.context-settings: Unknown context-factory com\.example\.Nope"
    ):
        load_settings(config)


def test_an_unknown_factory_of_a_context_started_at_boot_is_a_config_error(in_tmp_dir: Path) -> None:
    config = write_config(in_tmp_dir, 'spark.contexts { reporting { context-factory = "x.Y" } }\n')
    with pytest.raises(ConfigError, match=r"spark\.contexts\.reporting: Unknown context-factory x\.Y"):
        load_settings(config)


def test_start_deadlines_default_to_the_contracts(defaults: Settings) -> None:
    deadlines = start_deadlines(defaults.context_defaults)
    assert (deadlines.connect_s, deadlines.init_s) == (30.0, 60.0)
    assert defaults.context_creation_timeout_s == deadlines.connect_s + deadlines.init_s
    assert defaults.context_defaults["python"] == {"paths": [], "executable": ""}
