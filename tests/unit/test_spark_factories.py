"""Context factory names map onto what a job receives; an unknown name is a clear error."""

from __future__ import annotations

import pytest

from driver.spark import SESSION, SPARK_CONTEXT, UnknownFactory, factory_kind


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
