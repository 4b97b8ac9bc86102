"""Entry point of a context's driver; spark-submit runs this file as the application.

    spark-submit … driver/__main__.py --server tcp://host:port --context-id ID --context-name NAME
        --secrets-file NAME

The token and the bus's CURVE keys come in a secrets file, never on the command line: at the path
in JOBSERVER_DRIVER_SECRETS (client deploy mode), else by its name in the working folder, where
spark-submit's --files put it (cluster deploy mode).
Order of events: connect and say hello, get the context's settings, build Spark, report ready,
serve jobs until told to stop or until the server has been silent too long, then stop Spark.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

if not __package__:
    # Run as a script: drop this folder from the path so driver/spark.py and friends do not
    # pose as top-level modules; the package itself comes from --py-files or the install.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _here]

from driver.job_config import JsonValue
from driver.job_output import JobOutput
from driver.link import LinkError, ServerLink
from driver.progress import ProgressReporter
from driver.protocol import (
    SECRETS_PATH_ENV,
    BlobData,
    CheckSession,
    ContextInitFailed,
    ContextReady,
    DriverSecrets,
    DriverStopping,
    JobReportAck,
    JobResultChunkAck,
    KillJob,
    Message,
    ProtocolError,
    Rejected,
    ResultLimit,
    ServerHeartbeat,
    SessionChecked,
    StartJob,
    StopContext,
    Welcome,
    describe_exception,
)
from driver.runner import ANNOUNCE_AFTER_S, JobRunner
from driver.session_state import SessionProbe
from driver.spark import SparkHandle, build_spark

# Builds the context's Spark from the context's settings.
SparkFactory = Callable[[Mapping[str, JsonValue]], SparkHandle]

HANDSHAKE_TIMEOUT_S = 30.0
GC_THRESHOLDS = (20_000, 20, 20)  # CPython's defaults are (700, 10, 10)
JOB_STOP_GRACE_S = 5.0  # how long killed jobs get to end before Spark stops under them

log = logging.getLogger("driver")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="driver", description="Spark Job Server context driver")
    parser.add_argument("--server", required=True, help="bus endpoint, tcp://host:port")
    parser.add_argument("--context-id", required=True)
    parser.add_argument("--context-name", required=True)
    parser.add_argument("--secrets-file", required=True, help="name of the secrets file (not secret)")
    return parser.parse_args(argv)


def read_secrets(name: str) -> DriverSecrets:
    """The driver's token and keys: at the path the server gave (client deploy mode), else in the
    working folder, where spark-submit's --files put them (cluster deploy mode). The environment
    variable goes: the jobs this driver runs need not know where the file is."""
    path = Path(os.environ.pop(SECRETS_PATH_ENV, "") or Path.cwd() / name)
    return DriverSecrets.from_json(path.read_text())


def main(argv: list[str] | None = None, *, make_spark: SparkFactory = build_spark) -> int:
    """Run the driver; ``make_spark`` builds the context's Spark (a stand-in in some tests)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        secrets = read_secrets(arguments.secrets_file)
    except (OSError, ProtocolError) as error:
        log.error("cannot read the driver's secrets file: %s", error)
        return 2
    link = ServerLink(arguments.server, arguments.context_id, secrets)
    try:
        welcome = link.handshake(HANDSHAKE_TIMEOUT_S)
    except LinkError as error:
        log.error("cannot join the job server: %s", error)
        link.close()
        return 2
    driver = Driver(link, welcome, make_spark=make_spark)
    # SIGTERM (the server's escalation, or the cluster manager) ends the loop like a stop request.
    signal.signal(signal.SIGTERM, lambda *_: link.stop_serving())
    # Spark starts on its own thread so that the main thread heartbeats from the first second.
    threading.Thread(target=driver.boot, name="spark-boot", daemon=True).start()
    reason = link.serve(driver.handle, driver.running_job_ids, driver.tick, driver.spark_ui)
    log.info("driver stopping: %s", reason)
    link.post(DriverStopping(reason=reason))
    driver.stop()
    link.close()
    code = 0 if driver.booted_ok is not False else 3
    # A job thread that ignores being killed must not keep the process (and its JVM) alive.
    logging.shutdown()
    os._exit(code)


def add_python_paths(context_config: Mapping[str, JsonValue]) -> None:
    """The context's ``python.paths`` go first on the path before any job is imported (a job's
    own package goes before them, as in spark-jobserver). The server made them absolute."""
    python = context_config.get("python")
    paths = python.get("paths") if isinstance(python, dict) else None
    entries = paths if isinstance(paths, list) else str(paths or "").split(",")
    folders = [str(entry).strip() for entry in entries if str(entry).strip()]
    sys.path[0:0] = [folder for folder in folders if folder not in sys.path]


def _jobserver_section(server_config_json: bytes) -> dict[str, Any]:
    """``spark.jobserver`` of the server's config (what drivers may see of it)."""
    section: Any = json.loads(server_config_json or b"{}")
    for key in ("spark", "jobserver"):
        section = section.get(key) if isinstance(section, dict) else None
    return section if isinstance(section, dict) else {}


def _section(values: dict[str, Any], key: str) -> dict[str, Any]:
    value = values.get(key)
    return value if isinstance(value, dict) else {}


def _duration_s(value: object) -> float:
    """``200ms``, ``1s``, ``2m`` or a number of seconds (as the server's config writes them)."""
    text = str(value).strip().lower().replace(" ", "")
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * factor
    return float(text)


class Driver:
    """The context's state in this process: Spark (once it is up) and the job runner."""

    def __init__(self, link: ServerLink, welcome: Welcome, *, make_spark: SparkFactory) -> None:
        self._link = link
        self._welcome = welcome
        self._make_spark = make_spark
        self._context_config: dict[str, JsonValue] = json.loads(welcome.context_config_json)
        self._spark: SparkHandle | None = None
        self._runner: JobRunner | None = None
        self._max_result_bytes = 0  # the server's limit (ResultLimit); 0 until it says
        self._output: JobOutput | None = None
        self._progress: ProgressReporter | None = None
        self._session_probe: SessionProbe | None = None  # a pooled driver's, to tell what jobs changed
        self.booted_ok: bool | None = None

    def boot(self) -> None:
        add_python_paths(self._context_config)
        try:
            spark = self._make_spark(self._context_config)
        except Exception as error:
            log.exception("cannot create the Spark context")
            self.booted_ok = False
            self._link.post(ContextInitFailed(error=describe_exception(error)))
            self._link.stop_serving()
            return
        # The working folder is the context's own (the server's per-context folder, or a cluster
        # container's): it goes with the context.
        package_dir = Path.cwd() / "packages"
        settings = _jobserver_section(self._welcome.server_config_json)
        logs = _section(settings, "job-logs")
        output = JobOutput(
            self._link.post,
            max_lines=int(logs.get("max-lines", 10_000)),
            batch_lines=int(logs.get("batch-lines", 500)),
            batch_interval_s=_duration_s(logs.get("batch-interval", "200ms")),
        )
        output.install()
        self._output = output
        self._runner = JobRunner(
            spark,
            self._link.post,
            self._link.wake,
            max_jobs=self._welcome.max_jobs,
            announce_after_s=ANNOUNCE_AFTER_S,
            context_config=self._context_config,
            package_dir=package_dir,
            result_chunk_bytes=self._welcome.result_chunk_bytes,
            server_config_json=self._server_config_json,
            output=output,
        )
        self._runner.max_result_bytes = self._max_result_bytes
        progress = _section(settings, "job-progress")
        self._progress = ProgressReporter(
            spark.spark_context,
            self._link.post,
            self._runner.running_job_ids,
            interval_s=_duration_s(progress.get("interval", "1s")),
        )
        self._progress.start()
        if self._context_config.get("pool"):
            self._session_probe = SessionProbe(spark.session)
        self._spark = spark
        self.booted_ok = True
        # As the server does: Spark's and the driver's objects, loaded by now, leave the collector's
        # view, and the young generation is collected every 20,000 allocations, not every 700
        # (a job's way through the driver and py4j allocates hundreds).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        ready = ContextReady(
            application_id=spark.application_id, web_ui_url=spark.web_ui_url, spark_version=spark.version
        )
        self._link.post(ready)

    def _server_config_json(self) -> bytes:
        welcome = self._link.welcome  # a restarted server's, once the driver has rejoined it
        return welcome.server_config_json if welcome is not None else self._welcome.server_config_json

    def tick(self, now: float) -> float | None:
        if self._runner is None:
            return None
        self._runner.note_unacknowledged(now - self._welcome.heartbeat_interval_s)
        announce_due = self._runner.announce_started(now)
        logs_due = self._output.send_due(now) if self._output is not None else None
        if announce_due is None or logs_due is None:
            return announce_due if logs_due is None else logs_due
        return min(announce_due, logs_due)

    def spark_ui(self) -> tuple[str, str | None]:
        """Application id and web UI address once Spark is up ("" before)."""
        if self._spark is None:
            return "", None
        return self._spark.application_id, self._spark.web_ui_url

    def running_job_ids(self) -> list[str]:
        return self._runner.running_job_ids() if self._runner is not None else []

    def handle(self, message: Message) -> None:
        if isinstance(message, StartJob):
            if self._runner is None:  # the server only sends jobs after ContextReady
                log.warning("job %s arrived before Spark was up; ignored", message.job_id)
                return
            self._runner.start(message)
        elif isinstance(message, KillJob):
            if self._runner is not None:
                self._runner.kill(message.job_id)
        elif isinstance(message, BlobData):
            if self._runner is not None:
                self._runner.on_blob_data(message)
        elif isinstance(message, JobReportAck):  # a job's end is over on both sides
            if self._runner is not None:
                self._runner.on_acknowledged(message.job_id)
        elif isinstance(message, JobResultChunkAck):
            if self._runner is not None:
                self._runner.result_parts.put_away(message.job_id, message.received_bytes)
        elif isinstance(message, CheckSession):
            self._link.post(self._check_session())
        elif isinstance(message, ResultLimit):
            self._max_result_bytes = message.max_result_bytes
            if self._runner is not None:
                self._runner.max_result_bytes = message.max_result_bytes
        elif isinstance(message, StopContext | Rejected):
            self._link.stop_serving()
        elif not isinstance(message, ServerHeartbeat):
            log.warning("unexpected message %s", message.TYPE)

    def _check_session(self) -> SessionChecked:
        """For a pooled driver between jobs: what the jobs so far changed in the session (a
        driver not pooled, or not up, has no snapshot to compare: that counts as changed)."""
        if self._spark is None or self._session_probe is None:
            return SessionChecked(changed=True, changes=["no snapshot of the session"])
        changed = self._session_probe.changes()
        return SessionChecked(changed=bool(changed), changes=changed)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._runner is not None:
            stuck = self._runner.shutdown(JOB_STOP_GRACE_S)
            if stuck:
                log.warning("jobs still running after %.0f s, stopping anyway: %s", JOB_STOP_GRACE_S, stuck)
        if self._spark is not None:
            self._spark.stop()


if __name__ == "__main__":
    sys.exit(main())
