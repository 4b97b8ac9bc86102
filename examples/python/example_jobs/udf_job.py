"""A Python UDF from this package, run on the executors: proves the package is shipped to them."""

from pyspark.sql.functions import udf

from sparkjobserver.api import SparkJob, build_problems

from .udfs import shout

DEFAULT_WORDS = ["hello", "world"]


class UdfJob(SparkJob):
    """``input.strings`` (default ``["hello", "world"]``) → ``[[word, shout(word)], …]`` in input order,
    e.g. ``[["hello", "HELLO!"], ["world", "WORLD!"]]``.

    ``shout`` is a module-level function of ``example_jobs.udfs``, so Spark pickles it by reference and
    each Python worker has to import that module to run it, which fails unless the package got there.
    """

    def validate(self, context, runtime, config):
        words = config.get("input.strings", DEFAULT_WORDS)
        if not isinstance(words, list):
            return build_problems(["config input.strings must be a list of strings"])
        return [str(word) for word in words]

    def run_job(self, context, runtime, data):
        # useArrow=False: a plain pickled UDF needs no pyarrow on the executors.
        shout_udf = udf(shout, "string", useArrow=False)
        words = context.createDataFrame([(word,) for word in data], "word STRING")
        rows = words.select("word", shout_udf("word").alias("shouted")).collect()
        return [list(row) for row in rows]
