"""Reading configuration: HOCON in, typed frozen settings out.

This is the only module that reads pyhocon for server settings or looks at the environment
(request bodies are read by ``bodies``, in a child process, with this module's ``to_plain``).
It is about 400 lines because ``Settings`` names every server key in one place; the groups with
rules of their own live apart (``security_settings``, ``context_settings``, ``values``).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyhocon import ConfigFactory, ConfigTree

from jobserver.common.cluster_settings import Clusters, cluster_settings
from jobserver.common.context_settings import MEMORY, MEMORY_ALIAS, checked, with_canonical_names
from jobserver.common.errors import ConfigError
from jobserver.common.pool_settings import PoolSettings, pool_settings
from jobserver.common.security_settings import AuthSettings, TlsSettings, auth_settings, tls_settings
from jobserver.common.values import (
    as_timedelta,
    parse_bool,
    parse_duration_s,
    parse_size_bytes,
    render_timedelta,
    string_list,
)
from jobserver.resources import DEFAULTS_CONF

DEFAULTS_PATH = DEFAULTS_CONF


@dataclass(frozen=True, slots=True)
class Settings:
    master: str
    deploy_mode: str
    spark_home: Path
    clusters: Clusters  # spark.jobserver.clusters; the first is the default
    port: int
    bind_address: str
    work_dir: Path
    store_url: str
    max_jobs_per_context: int
    max_queued_jobs_per_context: int
    kill_grace_s: float
    restart_context_on_stuck_kill: bool
    context_creation_timeout_s: float
    context_deletion_timeout_s: float
    reattach_grace_s: float
    write_behind: bool  # a job's insert and an answered finish may trail the job path
    start_store_delay_s: float
    finish_store_delay_s: float
    supervise: bool  # spark.driver.supervise: the default of every context
    supervise_max_restarts: int
    supervise_backoff_s: float
    supervise_max_backoff_s: float
    default_sync_timeout_s: float
    max_upload_bytes: int
    result_chunk_bytes: int
    max_result_bytes: int  # a job's result beyond this ends the job in ERROR
    bus_port: int
    bus_bind_address: str
    bus_advertised_host: str
    bus_curve: bool  # CURVE on the bus: encrypted, and only drivers holding their context's key
    heartbeat_interval_s: float
    heartbeat_timeout_s: float
    driver_python: str
    driver_server_silence_grace_s: float
    driver_binaries_over_bus: bool
    driver_python_archive: str  # auto, off, or the path of a prebuilt archive (cluster deploy mode)
    server_id: str
    key_file: Path  # the key tokens, CURVE keys and peer signatures derive from
    peer_advertised_url: str  # where peers forward requests to this server
    peer_heartbeat_interval_s: float
    peer_timeout_s: float  # a peer silent for this long is dead; its contexts are adopted
    callback_attempts: int
    callback_retry_interval_s: float
    callback_timeout_s: float
    callback_allowed_hosts: tuple[str, ...]
    dao_cleanup_after_s: float
    dao_cleanup_interval_s: float
    cors_allowed_origins: tuple[str, ...]
    access_log: bool  # a log line per request (spark.jobserver.access-log)
    auth: AuthSettings  # who may call the REST API (spark.jobserver.auth)
    tls: TlsSettings  # HTTPS for the REST API (spark.jobserver.tls)
    client_settings_allowed: tuple[str, ...]  # context settings clients may set (patterns)
    client_settings_denied: tuple[str, ...]  # … and may not, even so
    context_defaults: Mapping[str, Any]
    startup_contexts: Mapping[str, Mapping[str, Any]]
    pools: tuple[PoolSettings, ...]  # warm drivers for ad-hoc jobs (spark.jobserver.pool)
    # The whole configuration as plain values: a job's config falls back to it (sjs-contract §2.3).
    plain: Mapping[str, Any]
    # What jobs print, and their progress (drivers read these from ``plain``; checked here).
    job_log_max_lines: int = 10_000
    job_log_batch_lines: int = 500
    job_log_batch_interval_s: float = 0.2
    job_progress_interval_s: float = 1.0
    # Schedules and workflows (spark.jobserver.scheduler, spark.jobserver.workflows).
    scheduler_enabled: bool = True
    scheduler_refresh_interval_s: float = 30.0
    scheduler_misfire_grace_s: float = 60.0
    scheduler_max_catch_up_s: float = 86_400.0
    workflow_reconcile_interval_s: float = 30.0
    schedule_runs_cleanup_after_s: float = 259_200.0  # retention, as dao_cleanup_after_s for jobs
    workflow_cleanup_after_s: float = 259_200.0

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def blob_dir(self) -> Path:
        return self.work_dir / "binaries"

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"


def load_settings(
    config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Defaults from conf/defaults.conf, then CONFIG_FILE, then ``overrides`` (dotted keys)."""
    try:
        tree = ConfigFactory.parse_file(str(DEFAULTS_PATH))
        if config_file is not None:
            path = Path(config_file)
            if not path.is_file():
                raise ConfigError(f"config file {path} does not exist")
            layer = ConfigFactory.parse_file(str(path))
            _rename_memory_alias(layer)
            tree = ConfigTree.merge_configs(tree, layer)
        for key, value in (overrides or {}).items():
            tree.put(_canonical_override(key), value)
    except ConfigError:
        raise
    except Exception as error:  # pyhocon raises its own and pyparsing's exceptions alike
        raise ConfigError(f"cannot parse configuration: {error}") from error
    return settings_from_tree(tree)


def _rename_memory_alias(layer: ConfigTree) -> None:
    """``mem-per-node`` in one config layer's context settings becomes ``memory-per-node`` there,
    before the layer is merged over the defaults (whose ``memory-per-node`` it then overrides)."""
    sections = [("spark.context-settings", layer.get("spark.context-settings", None))]
    contexts = layer.get("spark.contexts", None)
    if isinstance(contexts, ConfigTree):
        sections += [(f"spark.contexts.{name}", value) for name, value in contexts.items()]
    for where, section in sections:
        if isinstance(section, ConfigTree) and MEMORY_ALIAS in section:
            renamed = with_canonical_names(to_plain(section), where)
            section.pop(MEMORY_ALIAS)
            section.put(MEMORY, renamed[MEMORY])


def _canonical_override(key: str) -> str:
    if key.startswith(("spark.context-settings.", "spark.contexts.")) and key.endswith("." + MEMORY_ALIAS):
        return key.removesuffix(MEMORY_ALIAS) + MEMORY
    return key


def settings_from_tree(tree: ConfigTree) -> Settings:
    plain = to_plain(tree)
    spark = plain.get("spark", {})
    jobserver = spark.get("jobserver", {})
    _refuse_context_per_jvm_off(jobserver)
    work_dir = Path(str(jobserver.get("work-dir", "jobserver-work"))).expanduser().resolve()
    store_url = (
        str(jobserver.get("store", {}).get("url", "") or "") or f"sqlite:///{work_dir / 'metadata.db'}"
    )
    contexts = spark.get("contexts", {}) or {}
    if not isinstance(contexts, dict):
        raise ConfigError("spark.contexts must be an object of context name to settings")
    context_defaults = spark.get("context-settings", {}) or {}
    _check_context_settings(context_defaults, contexts)
    master = str(spark.get("master", "local[*]"))
    deploy_mode = str(spark.get("submit", {}).get("deployMode", "client"))
    spark_home = _spark_home(str(spark.get("home", "") or ""))
    return Settings(
        master=master,
        deploy_mode=deploy_mode,
        spark_home=spark_home,
        clusters=cluster_settings(
            jobserver.get("clusters", {}) or {}, master=master, spark_home=spark_home, deploy_mode=deploy_mode
        ),
        port=_int(jobserver, "port"),
        bind_address=str(jobserver.get("bind-address", "0.0.0.0")),
        work_dir=work_dir,
        store_url=store_url,
        supervise=parse_bool(spark.get("driver", {}).get("supervise", False)),
        cors_allowed_origins=tuple(string_list(jobserver.get("cors", {}).get("allowed-origins"))),
        access_log=parse_bool(jobserver.get("access-log", True)),
        auth=auth_settings(jobserver.get("auth", {}) or {}),
        tls=tls_settings(jobserver.get("tls", {}) or {}),
        client_settings_allowed=tuple(string_list(jobserver.get("client-settings", {}).get("allowed"))),
        client_settings_denied=tuple(string_list(jobserver.get("client-settings", {}).get("denied"))),
        context_defaults=context_defaults,
        startup_contexts=contexts,
        pools=pool_settings(jobserver.get("pool"), context_defaults),
        plain=plain,
        **_job_settings(jobserver),
        **_driver_settings(jobserver),
        **_peer_settings(jobserver, work_dir),
        **_scheduling_settings(jobserver),
    )


def _peer_settings(jobserver: Mapping[str, Any], work_dir: Path) -> dict[str, Any]:
    """The shared key and how servers on one store find and watch each other."""
    peers = jobserver.get("peers", {}) or {}
    key_file = str(jobserver.get("key-file", "") or "")
    url = str(peers.get("advertised-url", "") or "").rstrip("/")
    if not url:
        bind = str(jobserver.get("bind-address", "0.0.0.0"))
        host = socket.getfqdn() if bind in ("0.0.0.0", "*", "", "::") else bind
        scheme = "https" if (jobserver.get("tls", {}) or {}).get("cert-file") else "http"
        url = f"{scheme}://{host}:{jobserver['port']}"
    return {
        "key_file": Path(key_file).expanduser().resolve() if key_file else work_dir / "server.key",
        "peer_advertised_url": url,
        "peer_heartbeat_interval_s": parse_duration_s(peers.get("heartbeat-interval", "2s")),
        "peer_timeout_s": parse_duration_s(peers.get("timeout", "15s")),
    }


def _refuse_context_per_jvm_off(jobserver: Mapping[str, Any]) -> None:
    """spark-jobserver's default ran every context inside the server's JVM; this server always
    runs one driver process per context, and says so rather than ignore the setting."""
    value = jobserver.get("context-per-jvm")
    if value is not None and not parse_bool(value):
        raise ConfigError(
            "spark.jobserver.context-per-jvm = false is not supported: this server always runs one "
            "driver process per context (context-per-jvm = true); remove the setting or set it to true"
        )


def _check_context_settings(defaults: Mapping[str, Any], contexts: Mapping[str, Any]) -> None:
    """The defaults, and each context started at boot, as a context would get them."""
    layers = {"spark.context-settings": defaults}
    for name, settings in contexts.items():
        layers[f"spark.contexts.{name}"] = merge(defaults, settings if isinstance(settings, Mapping) else {})
    for where, settings in layers.items():
        try:
            checked(settings)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from error


def _job_settings(jobserver: Mapping[str, Any]) -> dict[str, Any]:
    """Slots, queues, timeouts and retention: the keys under spark.jobserver that jobs live by."""
    return {
        "max_jobs_per_context": _int(jobserver, "max-jobs-per-context"),
        "max_queued_jobs_per_context": _int(jobserver, "max-queued-jobs-per-context"),
        "kill_grace_s": parse_duration_s(jobserver["kill-grace"]),
        "restart_context_on_stuck_kill": parse_bool(jobserver.get("restart-context-on-stuck-kill", False)),
        "context_creation_timeout_s": parse_duration_s(jobserver["context-creation-timeout"]),
        "context_deletion_timeout_s": parse_duration_s(jobserver["context-deletion-timeout"]),
        "reattach_grace_s": parse_duration_s(jobserver["reattach-grace"]),
        "write_behind": parse_bool(jobserver.get("write-behind", True)),
        "start_store_delay_s": parse_duration_s(jobserver["start-store-delay"]),
        "finish_store_delay_s": parse_duration_s(jobserver["finish-store-delay"]),
        "supervise_max_restarts": _int(jobserver["supervise"], "max-restarts"),
        "supervise_backoff_s": parse_duration_s(jobserver["supervise"]["backoff"]),
        "supervise_max_backoff_s": parse_duration_s(jobserver["supervise"]["max-backoff"]),
        "default_sync_timeout_s": parse_duration_s(jobserver["default-sync-timeout"]),
        "max_upload_bytes": parse_size_bytes(jobserver["max-upload-size"]),
        "result_chunk_bytes": parse_size_bytes(jobserver["result-chunk-size"]),
        "max_result_bytes": parse_size_bytes(jobserver["max-result-size"]),
        "callback_attempts": _int(jobserver["callback"], "attempts"),
        "callback_retry_interval_s": parse_duration_s(jobserver["callback"]["retry-interval"]),
        "callback_timeout_s": parse_duration_s(jobserver["callback"]["timeout"]),
        "callback_allowed_hosts": tuple(string_list(jobserver["callback"].get("allowed-hosts"))),
        "dao_cleanup_after_s": parse_duration_s(jobserver["dao-cleanup-after"]),
        "dao_cleanup_interval_s": parse_duration_s(jobserver["dao-cleanup-interval"]),
        "server_id": str(jobserver.get("server-id", "") or "") or f"{socket.getfqdn()}:{jobserver['port']}",
        "job_log_max_lines": _int(jobserver["job-logs"], "max-lines"),
        "job_log_batch_lines": _int(jobserver["job-logs"], "batch-lines"),
        "job_log_batch_interval_s": parse_duration_s(jobserver["job-logs"]["batch-interval"]),
        "job_progress_interval_s": parse_duration_s(jobserver["job-progress"]["interval"]),
    }


def _scheduling_settings(jobserver: Mapping[str, Any]) -> dict[str, Any]:
    scheduler = jobserver.get("scheduler", {})
    return {
        "scheduler_enabled": parse_bool(scheduler.get("enabled", True)),
        "scheduler_refresh_interval_s": parse_duration_s(scheduler.get("refresh-interval", "30s")),
        "scheduler_misfire_grace_s": parse_duration_s(scheduler.get("misfire-grace", "60s")),
        "scheduler_max_catch_up_s": parse_duration_s(scheduler.get("max-catch-up", "1d")),
        "schedule_runs_cleanup_after_s": parse_duration_s(scheduler.get("runs-cleanup-after", "72h")),
        "workflow_cleanup_after_s": parse_duration_s(
            jobserver.get("workflows", {}).get("cleanup-after", "72h")
        ),
        "workflow_reconcile_interval_s": parse_duration_s(
            jobserver.get("workflows", {}).get("reconcile-interval", "30s")
        ),
    }


def _driver_settings(jobserver: Mapping[str, Any]) -> dict[str, Any]:
    """How drivers reach the server (the bus), how the two watch each other, and how drivers run."""
    bus = jobserver.get("bus", {})
    heartbeat = jobserver.get("heartbeat", {})
    driver = jobserver.get("driver", {})
    bus_bind = str(bus.get("bind-address", "127.0.0.1"))
    advertised = str(bus.get("advertised-host", "") or "")
    if not advertised:
        advertised = socket.getfqdn() if bus_bind in ("0.0.0.0", "*", "") else bus_bind
    return {
        "bus_port": _int(bus, "port"),
        "bus_bind_address": bus_bind,
        "bus_advertised_host": advertised,
        "bus_curve": parse_bool(bus.get("curve", True)),
        "heartbeat_interval_s": parse_duration_s(heartbeat["interval"]),
        "heartbeat_timeout_s": parse_duration_s(heartbeat["timeout"]),
        "driver_python": str(driver.get("python", "") or "") or sys.executable,
        "driver_server_silence_grace_s": parse_duration_s(driver["server-silence-grace"]),
        "driver_binaries_over_bus": _binaries_mode(driver.get("binaries", "auto")) == "bus",
        "driver_python_archive": _python_archive(str(driver.get("python-archive", "auto") or "off")),
    }


def _spark_home(configured: str) -> Path:
    if configured:
        return Path(configured)
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    import pyspark  # only to find the Spark it bundles; the server never starts Spark itself

    return Path(pyspark.__file__).resolve().parent


def _python_archive(value: str) -> str:
    if value in ("auto", "off"):
        return value
    if Path(value).is_file():
        return str(Path(value).resolve())
    raise ConfigError(
        f"spark.jobserver.driver.python-archive must be auto, off or an existing archive file, not {value}"
    )


def _binaries_mode(value: Any) -> str:
    mode = str(value)
    if mode not in ("auto", "bus"):
        raise ConfigError(f"spark.jobserver.driver.binaries must be auto or bus, got {mode!r}")
    return mode


def _int(section: Mapping[str, Any], key: str) -> int:
    try:
        return int(section[key])
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"setting {key} must be a whole number, got {section.get(key)!r}") from error


def to_plain(value: Any) -> Any:
    """A ConfigTree (or any pyhocon value) as JSON-able dicts, lists and scalars."""
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    period = as_timedelta(value)
    if period is not None:
        return render_timedelta(period)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # pyhocon's NoneValue and other markers
    return None if type(value).__name__ == "NoneValue" else str(value)


def expand_dotted(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"input.string": "a"}`` becomes ``{"input": {"string": "a"}}``, as HOCON reads it."""
    result: dict[str, Any] = {}
    for key, value in values.items():
        value = expand_dotted(value) if isinstance(value, Mapping) else value
        name = str(key)
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1]
        parts = name.split(".")
        target = result
        for part in parts[:-1]:
            existing = target.get(part)
            if not isinstance(existing, dict):
                existing = {}
                target[part] = existing
            target = existing
        leaf = parts[-1]
        if isinstance(value, dict) and isinstance(target.get(leaf), dict):
            target[leaf] = merge(target[leaf], value)
        else:
            target[leaf] = value
    return result


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: objects merge key by key, anything else in ``override`` replaces ``base``."""
    result = dict(base)
    for key, value in override.items():
        existing = result.get(key)
        if isinstance(value, Mapping) and isinstance(existing, Mapping):
            result[key] = merge(existing, value)
        else:
            result[key] = value
    return result


def get_path(values: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    current: Any = values
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return default
        current = current[part]
    return current


# Config sections drivers never get: credentials of the server's own services.
_SERVER_ONLY_SECTIONS = (
    ("spark", "jobserver", "store"),
    ("spark", "jobserver", "auth"),
    ("spark", "jobserver", "tls"),
)
_SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "credential", "private-key", "keytab")


def for_drivers(plain: Mapping[str, Any]) -> dict[str, Any]:
    """The server's config as drivers (and so jobs) get it: without the metadata store's and the
    authentication's sections, nor any key that names a secret."""
    config = _without_secret_keys(plain)
    for path in _SERVER_ONLY_SECTIONS:
        parent = get_path(config, ".".join(path[:-1]))
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    return config


def _without_secret_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: _without_secret_keys(value) if isinstance(value, Mapping) else value
        for key, value in values.items()
        if not any(word in key.lower() for word in _SECRET_WORDS)
    }


def redacted_url(url: str) -> str:
    """``url`` with its password, and query parameters that name secrets, replaced by ``***``:
    what may be logged or shown of it."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in credentials else f"{credentials}@{host}"
    query = "&".join(
        f"{name}=***" if any(word in name.lower() for word in _SECRET_WORDS) else f"{name}={value}"
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing to hide (and urlunsplit would drop an empty host's "//")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
