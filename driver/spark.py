"""What a context's factory hands its jobs: a SparkSession or a SparkContext.

spark-jobserver named context flavours by factory class; the names users already have in their
configs map here onto the PySpark object the job receives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SESSION = "session"
SPARK_CONTEXT = "spark_context"

FACTORY_KINDS: dict[str, str] = {
    "spark.jobserver.python.PythonSessionContextFactory": SESSION,
    "spark.jobserver.context.SessionContextFactory": SESSION,
    "spark.jobserver.context.DefaultSparkContextFactory": SPARK_CONTEXT,
    "spark.jobserver.python.PythonSparkContextFactory": SPARK_CONTEXT,
    # spark-jobserver's Java factory names: here they hand JVM jobs (and Python ones) the same.
    "spark.jobserver.context.JavaSessionContextFactory": SESSION,
    "spark.jobserver.context.JavaSparkContextFactory": SPARK_CONTEXT,
    # Hive: the server launches these with spark.sql.catalogImplementation=hive.
    "spark.jobserver.python.PythonHiveContextFactory": SESSION,
    "spark.jobserver.context.HiveContextFactory": SESSION,
}


class UnknownFactory(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SparkHandle:
    kind: str
    session: Any  # pyspark.sql.SparkSession
    spark_context: Any  # pyspark.SparkContext

    @property
    def job_context(self) -> Any:
        """The object a job's ``context`` argument receives."""
        return self.session if self.kind == SESSION else self.spark_context

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
        java_context = getattr(getattr(self.spark_context, "_jsc", None), "sc", None)
        if java_context is not None:
            java_context().cancelJobGroupAndFutureJobs(group_id, reason)
        else:
            self.spark_context.cancelJobGroup(group_id)

    def stop(self) -> None:
        self.session.stop()


def factory_kind(context_config: Mapping[str, Any]) -> str:
    factory = str(
        context_config.get("context-factory") or "spark.jobserver.python.PythonSessionContextFactory"
    )
    kind = FACTORY_KINDS.get(factory)
    if kind is None:
        known = ", ".join(sorted(FACTORY_KINDS))
        raise UnknownFactory(f"unknown context-factory {factory}; known factories: {known}")
    return kind


def build_spark(context_config: Mapping[str, Any]) -> SparkHandle:
    """Create the one SparkSession of this driver process (spark-submit already set its conf)."""
    kind = factory_kind(context_config)
    from pyspark.sql import SparkSession

    session = SparkSession.builder.getOrCreate()
    return SparkHandle(kind=kind, session=session, spark_context=session.sparkContext)
