"""Context factory names map onto what a job receives; an unknown name is a clear error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from driver.spark import (
    SESSION,
    SPARK_CONTEXT,
    STREAMING,
    SparkHandle,
    UnknownFactory,
    factory_kind,
    missing_local_jars,
    streaming_settings,
)


@pytest.mark.parametrize(
    ("factory", "kind"),
    [
        ("spark.jobserver.python.PythonSessionContextFactory", SESSION),
        ("spark.jobserver.context.SessionContextFactory", SESSION),
        ("spark.jobserver.context.JavaSessionContextFactory", SESSION),
        ("spark.jobserver.python.PythonHiveContextFactory", SESSION),
        ("spark.jobserver.context.DefaultSparkContextFactory", SPARK_CONTEXT),
        ("spark.jobserver.context.JavaSparkContextFactory", SPARK_CONTEXT),
    ],
)
def test_factory_names_map_to_what_jobs_receive(factory: str, kind: str) -> None:
    assert factory_kind({"context-factory": factory}) == kind


def test_no_factory_means_a_session() -> None:
    assert factory_kind({}) == SESSION


def test_unknown_factory_names_the_known_ones() -> None:
    with pytest.raises(UnknownFactory, match=r"known factories: .*SessionContextFactory"):
        factory_kind({"context-factory": "com.example.Nope"})


@pytest.mark.parametrize(
    "factory",
    [
        "spark.jobserver.context.StreamingContextFactory",
        "spark.jobserver.context.JavaStreamingContextFactory",
    ],
)
def test_streaming_factory_names_hand_jobs_a_streaming_context(factory: str) -> None:
    assert factory_kind({"context-factory": factory}) == STREAMING


def test_streaming_settings_default_to_one_second_batches_stopped_gracefully_with_spark() -> None:
    assert streaming_settings({}) == (1.0, True, True)


def test_streaming_settings_read_milliseconds_and_flags_as_given() -> None:
    config = {"streaming": {"batch_interval": "500", "stopGracefully": "false", "stopSparkContext": False}}
    assert streaming_settings(config) == (0.5, False, False)


def test_a_batch_interval_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match=r"streaming\.batch_interval"):
        streaming_settings({"streaming": {"batch_interval": 0}})


def test_missing_local_context_jars_are_named(tmp_path: Path) -> None:
    present = tmp_path / "present.jar"
    present.write_bytes(b"PK")
    config = {
        "dependent-jar-uris": [str(present), f"file://{present}", f"local://{present}", "hdfs://nn/x.jar"],
        "cp": f"{tmp_path}/gone.jar, file://{tmp_path}/gone-too.jar,https://repo.example/y.jar",
    }
    assert missing_local_jars(config) == [f"{tmp_path}/gone.jar", f"file://{tmp_path}/gone-too.jar"]


def test_names_of_uploaded_jars_are_left_to_the_server_that_found_them() -> None:
    assert missing_local_jars({"dependent-jar-uris": "sum-jar, /gone.jar", "cp": ["udfs"]}) == ["/gone.jar"]


def test_a_jobs_handle_keeps_everything_but_its_job_id() -> None:
    handle = SparkHandle(
        kind=STREAMING, session=object(), spark_context=object(), streaming=object(), queries=object()
    )
    assert handle.for_job("job-1") == dataclasses.replace(handle, job_id="job-1")
