"""A job that declares what its context must hand it does not run in a context that hands it
something else: the contract's "Invalid job type for this context" (no JVM starts here)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from driver.jobbase import INVALID_TYPE, JobRejected
from driver.jobkinds import load_job
from driver.protocol import FAILURE_INVALID_TYPE
from driver.spark import SESSION, SPARK_CONTEXT, STREAMING

EXAMPLES_SOURCE = Path(__file__).resolve().parents[2] / "examples" / "python"

SOURCE = """
from __future__ import annotations

import pyspark


def on_session(spark: SparkSession, config):
    return 1


def on_spark_context(sc: pyspark.SparkContext, config):
    return 1


def on_anything(spark, config):
    return 1


def on_something_else(spark: dict, config):
    return 1


class StreamingClass:
    def run(self, ssc: "StreamingContext", data, env):
        return 1


class SessionValidated:
    def validate(self, spark: SparkSession, config):
        return config

    def run(self, spark, data, env):
        return 1
"""


@pytest.fixture
def jobs_module() -> Iterator[str]:
    module = types.ModuleType("fit_jobs")
    exec(compile(SOURCE, "fit_jobs.py", "exec"), module.__dict__)
    sys.modules["fit_jobs"] = module
    yield "fit_jobs"
    sys.modules.pop("fit_jobs", None)


def rejected_as_invalid(main_class: str, kind: str) -> bool:
    try:
        load_job(main_class, context_kind=kind)
    except JobRejected as rejection:
        assert (rejection.kind, str(rejection)) == (FAILURE_INVALID_TYPE, INVALID_TYPE)
        return True
    return False


@pytest.mark.parametrize(
    ("main_class", "fits"),
    [
        ("fit_jobs:on_session", {SESSION}),
        ("fit_jobs:on_spark_context", {SPARK_CONTEXT}),
        ("fit_jobs.StreamingClass", {STREAMING}),
        ("fit_jobs.SessionValidated", {SESSION}),
        ("fit_jobs:on_anything", {SESSION, SPARK_CONTEXT, STREAMING}),
        ("fit_jobs:on_something_else", {SESSION, SPARK_CONTEXT, STREAMING}),
    ],
)
def test_annotated_context_types_must_match_the_context(
    jobs_module: str, main_class: str, fits: set[str]
) -> None:
    for kind in (SESSION, SPARK_CONTEXT, STREAMING):
        assert rejected_as_invalid(main_class, kind) is (kind not in fits), kind


def test_the_example_streaming_jobs_fit_only_streaming_contexts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES_SOURCE))
    assert rejected_as_invalid("example_jobs.streaming:queue_word_count", SESSION)
    assert not rejected_as_invalid("example_jobs.streaming:queue_word_count", STREAMING)
    assert rejected_as_invalid("example_jobs.streaming:active_queries", STREAMING)
    assert not rejected_as_invalid("example_jobs.streaming:rate_to_memory", SESSION)
