"""Word counting, the classic first job: ``input.strings = ["a", "b", "a"]`` gives ``{"a": 2, "b": 1}``."""

from sparkjobserver.api import SparkJob, build_problems


def read_strings(config):
    """The job data for the word-count jobs: the ``input.strings`` list, or validation problems."""
    strings = config.get("input.strings", None)
    if not isinstance(strings, list):
        return build_problems(["config input.strings not found"])
    return list(strings)


class WordCountSparkJob(SparkJob):
    """Counts words with a ``SparkContext``; on a ``SparkSession`` context ``run_job`` fails."""

    def validate(self, context, runtime, config):
        return read_strings(config)

    def run_job(self, context, runtime, data):
        return dict(context.parallelize(data).countByValue())


class WordCountSparkSessionJob(SparkJob):
    """Counts words with the ``SparkContext`` behind a ``SparkSession`` (the usual Python context)."""

    def validate(self, context, runtime, config):
        return read_strings(config)

    def run_job(self, context, runtime, data):
        return dict(context.sparkContext.parallelize(data).countByValue())


class FailingSparkJob(WordCountSparkJob):
    """Validates like the word count, then fails on purpose: shows how a job's exception is reported."""

    def run_job(self, context, runtime, data):
        raise ValueError("Deliberate failure")
