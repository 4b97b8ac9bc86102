"""What a context's factory hands its jobs: a SparkSession, a SparkContext or a StreamingContext.

spark-jobserver named context flavours by factory class; the names users already have in their
configs (``driver.protocol.CONTEXT_FACTORIES``, shared with the server, which refuses other names
before it launches a driver) map here onto the PySpark object the job receives.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

# The kinds are the driver's vocabulary too: its job kinds import them from here.
from driver.protocol import CONTEXT_FACTORIES, DEFAULT_CONTEXT_FACTORY
from driver.protocol import SESSION as SESSION
from driver.protocol import SPARK_CONTEXT as SPARK_CONTEXT
from driver.protocol import STREAMING as STREAMING
from driver.streaming import QueryTracker, StreamingContexts, track_queries

if TYPE_CHECKING:
    from py4j.java_gateway import JavaGateway
    from pyspark import SparkContext
    from pyspark.sql import SparkSession
    from pyspark.streaming import StreamingContext

    from driver.job_config import JsonValue

FACTORY_KINDS = CONTEXT_FACTORIES

DEFAULT_BATCH_INTERVAL_MS = 1000

log = logging.getLogger("driver.spark")


class UnknownFactory(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SparkHandle:
    kind: str
    session: SparkSession
    spark_context: SparkContext
    streaming: StreamingContexts | None = None  # a streaming context's StreamingContext
    queries: QueryTracker | None = None  # Structured Streaming queries by job
    job_id: str = ""  # set on the handle a job receives (for_job)
    # The context's config as the server sent it: JVM jobs of spark-jobserver's API read it in
    # verify, before the job (and its JobEnvironment) exists.
    context_config: Mapping[str, JsonValue] = field(default_factory=dict)

    def for_job(self, job_id: str) -> SparkHandle:
        """The handle one job works with: in a streaming context it records who got the
        StreamingContext, so that killing that job stops it."""
        # Not dataclasses.replace, which looks every field up again: this is on every job's way.
        return SparkHandle(
            kind=self.kind,
            session=self.session,
            spark_context=self.spark_context,
            streaming=self.streaming,
            queries=self.queries,
            job_id=job_id,
            context_config=self.context_config,
        )

    @property
    def job_context(self) -> SparkSession | SparkContext | StreamingContext:
        """The object a job's ``context`` argument receives."""
        if self.kind == STREAMING and self.streaming is not None:
            return self.streaming.context_for(self.job_id)
        return self.session if self.kind == SESSION else self.spark_context

    @property
    def gateway(self) -> JavaGateway:
        """py4j's gateway to this driver's JVM."""
        return java_gateway(self.spark_context)

    @property
    def application_id(self) -> str:
        return str(self.spark_context.applicationId)

    @property
    def web_ui_url(self) -> str | None:
        url = self.spark_context.uiWebUrl
        return str(url) if url else None

    @property
    def version(self) -> str:
        return str(self.spark_context.version)

    def cancel_job_group(self, group_id: str, reason: str) -> None:
        """Cancel the group's Spark jobs, and any it submits later (a job killed before its first
        action must not start one afterwards)."""
        java_spark_context = getattr(self.spark_context, "_jsc", None)
        if java_spark_context is not None:
            java_spark_context.sc().cancelJobGroupAndFutureJobs(group_id, reason)
        elif not hasattr(self.spark_context, "_jsc"):  # a stand-in; a stopped context has _jsc None
            self.spark_context.cancelJobGroup(group_id)

    def drop_thread_connection(self) -> None:
        """Close the calling thread's py4j connection; its next call opens a new one.

        For the thread of a killed job: the kill's exception can land just after a command was
        sent and before its answer was read. That answer stays on the connection, and while the
        job's error (or anything else that holds its frames) lives, the thread's next command
        would read it as its own ("java does not exist in the JVM", wrong results).
        """
        gateway = getattr(self.spark_context, "_gateway", None)
        client = getattr(gateway, "_gateway_client", None)
        thread_connection = getattr(client, "get_thread_connection", None)
        if thread_connection is None:  # a stand-in, or py4j without pinned threads
            return
        connection = thread_connection()
        if connection is None:
            return
        with contextlib.suppress(ValueError):
            client.deque.remove(connection)  # type: ignore[union-attr]  # py4j's JavaClient has it
        connection.close()  # its socket is None now: py4j connects afresh

    def stop_streaming(self) -> None:
        """The context ends: its StreamingContext stops first, as its settings ask."""
        if self.streaming is None:
            return
        try:
            self.streaming.stop()
        except Exception:  # the context is ending regardless; its jobs are killed next
            log.warning("the StreamingContext did not stop cleanly", exc_info=True)

    def stop(self) -> None:
        self.session.stop()


def java_gateway(spark_context: SparkContext) -> JavaGateway:
    """The gateway of a running SparkContext (pyspark's is None until one starts)."""
    gateway = spark_context._gateway
    if gateway is None:
        raise RuntimeError("Spark has no JVM gateway: it has not started")
    return gateway


def factory_kind(context_config: Mapping[str, JsonValue]) -> str:
    factory = str(context_config.get("context-factory") or DEFAULT_CONTEXT_FACTORY)
    kind = FACTORY_KINDS.get(factory)
    if kind is None:
        known = ", ".join(sorted(FACTORY_KINDS))
        raise UnknownFactory(f"unknown context-factory {factory}; known factories: {known}")
    return kind


def streaming_settings(context_config: Mapping[str, JsonValue]) -> tuple[float, bool, bool]:
    """``streaming.batch_interval`` (ms) in seconds, ``stopGracefully``, ``stopSparkContext``."""
    streaming = context_config.get("streaming")
    if not isinstance(streaming, dict):
        streaming = {}
    interval = streaming.get("batch_interval", DEFAULT_BATCH_INTERVAL_MS)
    if not isinstance(interval, int | float | str):
        raise ValueError(f"streaming.batch_interval must be a number of ms, not {interval!r}")
    interval_ms = float(interval)
    if interval_ms <= 0:
        raise ValueError(f"streaming.batch_interval must be a positive number of ms, not {interval_ms:g}")
    return (
        interval_ms / 1000.0,
        _flag(streaming.get("stopGracefully", True)),
        _flag(streaming.get("stopSparkContext", True)),
    )


def _flag(value: JsonValue) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("true", "on", "yes", "1")


def missing_local_jars(context_config: Mapping[str, JsonValue]) -> list[str]:
    """The context's jars (``dependent-jar-uris``, ``cp``) that name a local file that is not there.

    spark-submit only warns about those and starts without them; a context whose classes are
    missing is better refused at once. Entries without a ``/`` are names of uploaded jars, which
    the server found and handed to spark-submit as files of its own.
    """
    missing = []
    for key in ("dependent-jar-uris", "cp"):
        value = context_config.get(key) or []
        entries = value if isinstance(value, list) else str(value).split(",")
        for entry in (str(item).strip() for item in entries):
            parts = urlsplit(entry)
            if "/" not in entry:
                continue
            if parts.scheme in ("", "file", "local") and not Path(parts.path).is_file():
                missing.append(entry)
    return missing


def build_spark(context_config: Mapping[str, JsonValue]) -> SparkHandle:
    """Create the one SparkSession of this driver process (spark-submit already set its conf)."""
    kind = factory_kind(context_config)
    streaming_config = streaming_settings(context_config) if kind == STREAMING else None
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    # In cluster mode the jars were shipped to the driver's host under other paths.
    if SparkConf().get("spark.submit.deployMode", "client") == "client":
        missing = missing_local_jars(context_config)
        if missing:
            raise FileNotFoundError(
                f"dependent jars not found: {', '.join(missing)} (a context's jars are absolute "
                "paths, URIs or names of uploaded jars)"
            )
    session = SparkSession.builder.getOrCreate()
    spark_context = session.sparkContext
    streaming = None
    if streaming_config is not None:
        batch_interval_s, stop_gracefully, stop_spark_context = streaming_config

        def make_streaming_context() -> StreamingContext:
            from pyspark.streaming import StreamingContext

            # pyspark annotates the batch duration as whole seconds, but turns it into
            # milliseconds before it truncates: streaming.batch_interval is in ms.
            return StreamingContext(spark_context, batch_interval_s)  # type: ignore[arg-type]

        streaming = StreamingContexts(
            make_streaming_context, stop_gracefully=stop_gracefully, stop_spark_context=stop_spark_context
        )
    return SparkHandle(
        kind=kind,
        session=session,
        spark_context=spark_context,
        streaming=streaming,
        queries=track_queries(session, java_gateway(spark_context)),
        context_config=context_config,
    )
