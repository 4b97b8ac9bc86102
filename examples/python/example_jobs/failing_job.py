"""Jobs that fail on purpose, in ``run_job`` or in ``validate``, to show how failures are reported."""

from sparkjobserver.api import SparkJob


class FailingRunJob(SparkJob):
    """Accepts any request, then raises from ``run_job``."""

    def validate(self, context, runtime, config):
        return "fine"

    def run_job(self, context, runtime, data):
        raise Exception("Deliberate failure")


class FailingValidateJob(SparkJob):
    """Raises from ``validate``, so ``run_job`` is never reached."""

    def validate(self, context, runtime, config):
        raise Exception("Deliberate failure")

    def run_job(self, context, runtime, data):
        return "unreachable"
