"""What a context's settings decide about its jobs' failures (contract §4.1)."""

from __future__ import annotations

import pytest

from jobserver.jobs.submission import stops_on_job_error

STREAMING = "spark.jobserver.context.StreamingContextFactory"
JAVA_STREAMING = "spark.jobserver.context.JavaStreamingContextFactory"
SESSION = "spark.jobserver.python.PythonSessionContextFactory"


@pytest.mark.parametrize("factory", [STREAMING, JAVA_STREAMING])
def test_a_streaming_context_stops_on_a_job_error_unless_set(factory: str) -> None:
    assert stops_on_job_error({"context-factory": factory}) is True
    assert stops_on_job_error({"context-factory": factory, "stop-context-on-job-error": False}) is False
    assert stops_on_job_error({"context-factory": factory, "stop-context-on-job-error": "off"}) is False


@pytest.mark.parametrize("config", [{}, {"context-factory": SESSION}, {"stop-context-on-job-error": ""}])
def test_other_contexts_keep_running_after_a_job_error_unless_set(config: dict[str, object]) -> None:
    assert stops_on_job_error(config) is False


@pytest.mark.parametrize("value", [True, "true", "on", "yes", "TRUE"])
def test_stop_context_on_job_error_set_to_true_stops_any_context(value: object) -> None:
    assert stops_on_job_error({"context-factory": SESSION, "stop-context-on-job-error": value}) is True
