"""A trivial Spark job that also reports how long its Spark call took inside the driver, so a
benchmark can tell the server's share of a round trip from Spark's."""

import time

from sparkjobserver.api import SparkJob


class TimedCountJob(SparkJob):
    """``count`` elements (default 10) through Spark → ``{"count": n, "spark_ms": t}``."""

    def validate(self, context, runtime, config):
        return int(config.get("count", 10))

    def run_job(self, context, runtime, data):
        spark_context = getattr(context, "sparkContext", context)
        started = time.perf_counter()
        count = spark_context.parallelize(range(data), 1).count()
        return {"count": count, "spark_ms": (time.perf_counter() - started) * 1000.0}
