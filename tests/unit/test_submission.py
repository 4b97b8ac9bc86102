"""What a POST /jobs asks to run, and what a context's settings decide about its jobs' failures."""

from __future__ import annotations

import pytest

from jobserver.jobs.submission import JobRequest, is_uri, stops_on_job_error, what_to_run

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


def request_for(**fields: object) -> JobRequest:
    return JobRequest(posted_config={}, **fields)  # type: ignore[arg-type]


def test_a_jobs_dependent_jars_come_first_with_app_name_and_with_cp() -> None:
    config = {"dependent-jar-uris": "file:///deps/a.jar, udfs"}
    legacy = what_to_run(request_for(app_name="app", class_path="x.Job"), config)
    assert legacy == ("x.Job", ["file:///deps/a.jar", "udfs", "app"])
    with_cp = what_to_run(request_for(cp=["app", "udfs"], main_class="x.Job"), config)
    assert with_cp == ("x.Job", ["file:///deps/a.jar", "udfs", "app"])
    assert what_to_run(request_for(cp=["app"], main_class="x.Job"), {}) == ("x.Job", ["app"])


@pytest.mark.parametrize(
    ("entry", "uri"),
    [
        ("examples", False),
        ("my-jobs.v2", False),
        ("file:/opt/jobs/x.jar", True),
        ("file:///opt/jobs/x.jar", True),
        ("local:///opt/jobs/x.jar", True),
        ("https://repo.example/x.jar", True),
        ("hdfs://nn:8020/jobs/x.jar", True),
        ("c:/jobs/x.jar", False),
    ],
)
def test_cp_entries_with_a_scheme_are_uris_and_the_rest_binary_names(entry: str, uri: bool) -> None:
    assert is_uri(entry) is uri
