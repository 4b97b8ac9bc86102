"""Jobs that take ``sleep.seconds`` (default 10) to finish: for testing kills, timeouts and slots."""

import contextlib
import numbers
import time

from sparkjobserver.api import SparkJob, build_problems

DEFAULT_SECONDS = 10.0
STEP_S = 0.1
# Two tasks sleep side by side, so the job lasts about sleep.seconds on a context with two cores or more.
SLICES = 2


def read_seconds(config):
    seconds = config.get("sleep.seconds", DEFAULT_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or seconds < 0:
        return build_problems(["config sleep.seconds must be a non-negative number"])
    return float(seconds)


class SleepJob(SparkJob):
    """Runs a Spark job whose tasks sleep in 0.1 s steps; cancelling the job group stops it.

    Returns the number of elements processed (``2 * round(seconds / 0.1)``, at least 2).
    """

    def validate(self, context, runtime, config):
        return read_seconds(config)

    def run_job(self, context, runtime, data):
        spark_context = getattr(context, "sparkContext", context)  # a SparkSession or a SparkContext
        steps = max(1, round(data / STEP_S))
        step_s = STEP_S

        # A local function is pickled by value, so this job works even where the package has not
        # reached the executors (UdfJob is the one that tests that).
        def sleep_one_step(element):
            time.sleep(step_s)
            return element

        return spark_context.parallelize(range(steps * SLICES), SLICES).map(sleep_one_step).count()


class PythonSleepJob(SparkJob):
    """Sleeps in the driver's Python code without calling Spark or checking for cancellation.

    Returns the number of seconds it slept.
    """

    def validate(self, context, runtime, config):
        return read_seconds(config)

    def run_job(self, context, runtime, data):
        deadline = time.monotonic() + data
        while (remaining_s := deadline - time.monotonic()) > 0:
            time.sleep(min(STEP_S, remaining_s))
        return data


class StubbornJob(SparkJob):
    """Ignores being killed: sleeps ``sleep.seconds`` whatever happens (for testing stops that
    must wait for, or escalate past, a job that does not cooperate)."""

    def validate(self, context, runtime, config):
        return read_seconds(config)

    def run_job(self, context, runtime, data):
        deadline = time.monotonic() + data
        while (remaining_s := deadline - time.monotonic()) > 0:
            with contextlib.suppress(BaseException):  # ignoring the kill is this job's purpose
                time.sleep(min(STEP_S, remaining_s))
        return data
