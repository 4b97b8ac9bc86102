"""A job for contexts that hand jobs a bare ``SparkContext`` rather than a ``SparkSession``."""

from pyspark import SparkContext

from sparkjobserver.api import SparkJob, build_problems


class SparkContextJob(SparkJob):
    """No input; returns ``sum(range(10))`` computed by Spark, i.e. ``45``."""

    def validate(self, context, runtime, config):
        if not isinstance(context, SparkContext):
            return build_problems(["Expected a SparkContext context"])
        return None

    def run_job(self, context, runtime, data):
        return context.parallelize(range(10)).sum()
